// The model off the main thread: ONNX Runtime Web (WebAssembly) runs the bundle's streaming step here and keeps
// the state tensors between chunks (js/model.js). Messages: init {bytes, cfg, numThreads} -> ready;
// run {chunk} -> result {logits, rows, vocab, ms}; reset -> ready.
import * as ort from '../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';
import { ChunkModel, frameNumbers } from './model.js';

let model = null;
self.onmessage = async (e) => {
  const m = e.data;
  try {
    if (m.type === 'init') {
      ort.env.wasm.wasmPaths = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
      if (m.numThreads) ort.env.wasm.numThreads = m.numThreads;
      model = await ChunkModel.create(ort, m.bytes, m.cfg);
      // one warm-up step on zeros (the first run allocates), then the state starts from zeros again
      const warm = await model.run(new Float32Array(m.cfg.chunk * frameNumbers(m.cfg)));
      model.reset();
      self.postMessage({ type: 'ready', id: m.id, threads: ort.env.wasm.numThreads, isolated: self.crossOriginIsolated, warmup_ms: warm.ms });
    } else if (m.type === 'run') {
      const r = await model.run(m.chunk);
      self.postMessage({ type: 'result', id: m.id, ...r }, [r.logits.buffer]);
    } else if (m.type === 'reset') {
      model.reset();
      self.postMessage({ type: 'ready', id: m.id });
    }
  } catch (err) {
    self.postMessage({ type: 'error', id: m.id, message: String(err?.message || err) });
  }
};

// The bundle's streaming step in ONNX Runtime Web: fixed chunks [1, chunk, 3, S, S] (a landmark bundle:
// [1, chunk, 86, 2]; a fusion bundle both, packed one after the other in one array: cfg.inputs), state tensors carried
// from each step's outputs to the next step's inputs, zeros at the start (demos/README.md step 5). The ort
// module is passed in, so the same code runs in the page's worker and in Node (tests/web/).

export class ChunkModel {
  constructor(ort, session, cfg) {
    this.ort = ort; this.session = session; this.cfg = cfg;
    const have = new Set(session.inputNames);
    this.inputs = dataInputs(cfg);
    const want = [...this.inputs.map((i) => i.name), ...cfg.state.map((s) => s.input)];
    const missing = want.filter((n) => !have.has(n));
    if (missing.length) throw new Error(`model inputs ${[...have]} lack the manifest's ${missing}`);
    this.reset();
  }

  static async create(ort, modelBytes, cfg, options = {}) {
    const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', ...options });
    return new ChunkModel(ort, session, cfg);
  }

  reset() {
    this.state = {};
    for (const s of this.cfg.state) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      this.state[s.input] = new this.ort.Tensor('float32', new Float32Array(n), s.shape);
    }
  }

  /** One chunk (Float32Array of chunk * 3 * S * S, or chunk * 86 * 2, or a fusion bundle's chunk * 3 * S * S frames
   * then chunk * 86 * 2 landmarks) -> {logits: Float32Array [rows * V], rows, vocab, ms}.
   * Calls run one after another in call order (each needs the state the previous one left). */
  run(chunk) {
    const next = (this.queue || Promise.resolve()).then(() => this._run(chunk));
    this.queue = next.catch(() => {});
    return next;
  }

  async _run(chunk) {
    const { cfg, ort } = this;
    const t0 = performance.now();
    const feeds = { ...this.state };
    let off = 0;
    for (const { name, shape } of this.inputs) {
      const n = cfg.chunk * shape.reduce((a, b) => a * b, 1);
      feeds[name] = new ort.Tensor('float32', this.inputs.length === 1 ? chunk : chunk.subarray(off, off + n), [1, cfg.chunk, ...shape]);
      off += n;
    }
    if (off !== chunk.length) throw new Error(`a chunk of ${chunk.length} numbers; the model takes ${off} (${this.inputs.map((i) => i.name)})`);
    const out = await this.session.run(feeds);
    for (const s of cfg.state) this.state[s.input] = out[s.output];
    const lp = out[cfg.logitsOutput];
    return { logits: new Float32Array(lp.data), rows: lp.dims[1], vocab: lp.dims[2], ms: performance.now() - t0 };
  }
}

/** The model's data inputs per model frame [{name, shape}], in the order a chunk packs them (parseManifest's
 * cfg.inputs; a cfg without it: its one frames input). */
export function dataInputs(cfg) {
  return cfg.inputs || [{ name: cfg.framesInput, shape: cfg.frameShape || [3, cfg.size, cfg.size] }];
}

/** Numbers per model frame over every data input (a chunk is cfg.chunk times this). */
export const frameNumbers = (cfg) => dataInputs(cfg).reduce((a, { shape }) => a + shape.reduce((x, y) => x * y, 1), 0);

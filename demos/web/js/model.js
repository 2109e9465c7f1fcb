// The bundle's streaming step in ONNX Runtime Web: fixed chunks [1, chunk, 3, S, S] (a landmark bundle:
// [1, chunk, 86, 2]), state tensors carried
// from each step's outputs to the next step's inputs, zeros at the start (demos/README.md step 5). The ort
// module is passed in, so the same code runs in the page's worker and in Node (tests/web/).

export class ChunkModel {
  constructor(ort, session, cfg) {
    this.ort = ort; this.session = session; this.cfg = cfg;
    const have = new Set(session.inputNames);
    const want = [cfg.framesInput, ...cfg.state.map((s) => s.input)];
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

  /** One chunk (Float32Array of chunk * 3 * S * S, or chunk * 86 * 2) -> {logits: Float32Array [rows * V], rows, vocab, ms}.
   * Calls run one after another in call order (each needs the state the previous one left). */
  run(chunk) {
    const next = (this.queue || Promise.resolve()).then(() => this._run(chunk));
    this.queue = next.catch(() => {});
    return next;
  }

  async _run(chunk) {
    const { cfg, ort } = this;
    const t0 = performance.now();
    const feeds = { ...this.state, [cfg.framesInput]: new ort.Tensor('float32', chunk, [1, cfg.chunk, ...(cfg.frameShape || [3, cfg.size, cfg.size])]) };
    const out = await this.session.run(feeds);
    for (const s of cfg.state) this.state[s.input] = out[s.output];
    const lp = out[cfg.logitsOutput];
    return { logits: new Float32Array(lp.data), rows: lp.dims[1], vocab: lp.dims[2], ms: performance.now() - t0 };
  }
}

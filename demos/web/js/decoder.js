// Streaming greedy CTC with the sherpa-onnx endpoint rules: slsdk.decode.ctc.GreedyStream + EndpointConfig
// (demos/README.md, "Client rules" step 6). Rows are log probabilities; one row lasts frameShift seconds
// (output_stride / fps); times count from the stream's global step offset, which survives reset().

// [must_contain_nonsilence, min_trailing_silence (s), min_utterance_length (s)]: EndpointConfig's defaults
export const ENDPOINT_RULES = [
  [false, 2.4, 0.0], // rule1: nothing decoded and a long trailing blank run (the signer never started)
  [true, 1.2, 0.0], // rule2: a shorter trailing blank run after glosses (the sentence ended)
  [false, 0.0, 20.0], // rule3: the utterance is too long
];

export class GreedyStream {
  constructor({ blank = 0, frameShift = 0.04, rules = ENDPOINT_RULES } = {}) {
    if (!(frameShift > 0)) throw new Error(`frameShift must be > 0 seconds, got ${frameShift}`);
    this.blank = blank; this.frameShift = frameShift; this.rules = rules;
    this.frame = 0; this.uttStart = 0; this.final = false; this.vocab = null;
    this._clear();
  }

  _clear() { this.prev = this.blank; this.runs = []; this.trail = 0; this.score = 0; }

  reset() { this._clear(); this.uttStart = this.frame; this.final = false; }

  /** Feed rows: a Float32Array of t * V log probabilities (row-major) with V = vocab. */
  accept(rows, vocab) {
    if (this.final) throw new Error('stream was finalized; call reset() to start a new utterance');
    if (this.vocab !== null && vocab !== this.vocab) throw new Error(`vocabulary size changed: ${this.vocab} then ${vocab}`);
    this.vocab = vocab;
    const t = rows.length / vocab;
    for (let r = 0; r < t; r++) {
      let best = 0; let lp = rows[r * vocab];
      for (let v = 1; v < vocab; v++) { const x = rows[r * vocab + v]; if (x > lp) { lp = x; best = v; } }
      if (Number.isNaN(lp)) throw new Error(`log_probs contains NaN at step ${this.frame}`);
      this.score += lp;
      if (best === this.blank) this.trail += 1;
      else {
        const p = Math.exp(lp);
        if (best === this.prev) { const run = this.runs[this.runs.length - 1]; run[2] = this.frame + 1; run[3] += p; run[4] += 1; }
        else this.runs.push([best, this.frame, this.frame + 1, p, 1]);
        this.trail = 0;
      }
      this.prev = best;
      this.frame += 1;
    }
  }

  isEndpoint() {
    const eps = 1e-9;
    const uttLen = (this.frame - this.uttStart) * this.frameShift;
    const trailing = this.trail * this.frameShift;
    const has = this.runs.length > 0;
    return this.rules.some(([must, sil, len]) => (has || !must) && trailing + eps >= sil && uttLen + eps >= len);
  }

  finalize() { this.final = true; return this.result(); }

  result() {
    const fs = this.frameShift;
    return {
      tokens: this.runs.map((r) => r[0]),
      events: this.runs.map(([id, s, e, ps, n]) => ({ id, start: s * fs, end: e * fs, confidence: ps / n })),
      score: this.score, isFinal: this.final,
    };
  }
}

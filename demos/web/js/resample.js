// Resample a timed frame stream to the model's fps: slsdk.runtime.sources.FrameResampler, rule for rule
// (demos/README.md, "Client rules" step 2). Output frame k stands for t0 + k / fps and shows the source frame
// nearest in time (a tie goes to the later frame). push(t) returns how many output frames the *previous*
// source frame fills (0: dropped; null for the first frame); finish() gives the last frame's count.

export const LIVE_MAX_GAP_S = 0.25; // cameras: a longer gap is skipped, not filled with repeats

export class FrameResampler {
  constructor(fps, maxGap = null) {
    if (!(fps > 0) || !Number.isFinite(fps)) throw new Error(`fps must be positive, got ${fps}`);
    if (maxGap !== null && !(maxGap > 0)) throw new Error(`maxGap must be positive seconds or null, got ${maxGap}`);
    this.fps = fps; this.period = 1 / fps; this.maxGap = maxGap;
    this.sourceFrames = 0; this.frames = 0; this.dropped = 0; this.repeated = 0; this.gaps = 0; this.gapS = 0;
    this._span = 0;
    this.restart();
  }

  restart() {
    this._t0 = null; this._prev = null; this._interval = null;
    this._offset = 0; this._next = 0; this._finished = false;
  }

  _take(limit) {
    const n = Math.max(0, Math.ceil((limit - this._t0) * this.fps - 1e-9));
    const c = Math.max(0, n - this._next);
    this._next += c;
    return c;
  }

  _count(c) {
    this.frames += c;
    if (c === 0) this.dropped += 1; else this.repeated += c - 1;
    return c;
  }

  push(t) {
    if (!Number.isFinite(t)) throw new Error(`frame timestamp must be a finite number of seconds, got ${t}`);
    if (this._finished) throw new Error('FrameResampler.push after finish(); call restart() first');
    this.sourceFrames += 1;
    if (this._t0 === null) { this._t0 = this._prev = t; return null; }
    let ta = t - this._offset;
    let d = ta - this._prev;
    if (d < 0 || (this.maxGap !== null && d > this.maxGap)) {
      const shift = d - this.period;
      this._offset += shift; ta -= shift;
      this.gaps += 1; this.gapS += Math.max(0, shift);
      d = this.period;
    }
    const c = this._take((this._prev + ta) / 2);
    if (d > 0) { this._interval = d; this._span += d; }
    this._prev = ta;
    return this._count(c);
  }

  finish() {
    if (this._t0 === null || this._finished) return null;
    this._finished = true;
    return this._count(this._take(this._prev + 0.5 * (this._interval || this.period)));
  }

  stats() {
    const src = this._span > 0 && this.sourceFrames > 1 ? (this.sourceFrames - 1) / this._span : null;
    return { policy: 'nearest', fps: this.fps, source_fps: src, source_frames: this.sourceFrames, frames: this.frames,
      dropped: this.dropped, repeated: this.repeated, gaps: this.gaps, gap_s: this.gapS };
  }
}

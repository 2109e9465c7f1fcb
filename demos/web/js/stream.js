// One stream through the bundle, as slsdk.runtime.Recognizer / Stream do it (demos/README.md, "Client rules"):
// timed frames -> resample to the manifest's fps -> (hand crop box, smoothed) -> preprocess -> fixed chunks
// through the model, state carried -> streaming greedy CTC. The last partial chunk is zero-padded and only the
// output steps of real frames (rounded up to the stride) are decoded.
import { FrameResampler } from './resample.js';
import { Preprocessor, cropSquare, rint } from './preprocess.js';
import { BoxTracker, HandSchedule } from './hands.js';
import { GreedyStream } from './decoder.js';

/** The hand crop of a frame from the hands found in it (slsdk.runtime.hand_tracker.HandCropper after the
 * landmarker): the tracked box (smoothed, held, fallback) -> the square crop at the resize size. Shared by Stream
 * (hands from its detector) and FusionStream (hands from the landmarker's one hand pass). */
export class HandCrop {
  constructor(cfg, policy = cfg.crop.policy) {
    this.tracker = new BoxTracker({ ...cfg.crop, policy }); this.resizeShorter = cfg.resizeShorter;
  }

  /** img, hands (landmarks [[x, y, z] x 21] per hand, pixels) -> {res (the box, status, landmarks), src (the crop)};
   * counts into stats (frames_with_hands, total_hands, held_frames, fallback_frames). */
  crop(img, hands, stats) {
    const res = this.tracker.update(hands, img.width, img.height);
    res.landmarks = hands;
    stats.frames_with_hands += hands.length > 0; stats.total_hands += hands.length;
    stats.held_frames += res.status === 'held'; stats.fallback_frames += res.status === 'fallback';
    return { res, src: cropSquare(img, res.box, this.resizeShorter) };
  }
}

export class Stream {
  /**
   * cfg: parseManifest(...); model: {run(chunk) -> Promise<{logits, rows, vocab, ms}>, reset()};
   * detector: {detect(img, timestampMs) -> Promise<landmarks per hand>} (needed when cfg.crop.policy is "hands");
   * onCrop(img, cropResult, tModel): called per cropped frame (overlays); debug: keep every chunk's logits.
   */
  constructor(cfg, model, { detector = null, onCrop = null, debug = false, maxGap = null, cropPolicy = null } = {}) {
    this.cfg = cfg; this.model = model; this.detector = detector; this.onCrop = onCrop; this.debug = debug;
    this.policy = cropPolicy || cfg.crop.policy;
    if (this.policy === 'hands' && !detector) throw new Error('the bundle crops hands (crop.policy "hands") but no hand detector was given');
    this.pre = new Preprocessor(cfg.input);
    this.handCrop = new HandCrop(cfg, this.policy); this.schedule = new HandSchedule(cfg.crop);
    this.resampler = new FrameResampler(cfg.fps, maxGap);
    this.decoder = new GreedyStream({ blank: cfg.blank, frameShift: cfg.frameShift });
    this.fs = this.pre.frameSize;
    this.buffer = new Float32Array(cfg.chunk * this.fs); this.filled = 0;
    this.held = null; this.frameIndex = 0; this.lastTs = -1;
    this.stats = { frames: 0, frames_with_hands: 0, total_hands: 0, held_frames: 0, fallback_frames: 0, detections: 0, detect_ms: 0, chunks: 0,
      model_ms: 0, crop_ms: 0, preprocess_ms: 0 };
    this.chunkLogits = []; this.chunkMs = []; this.detectMs = [];
    this.pending = Promise.resolve(); this.inFlight = 0; this.finished = false; this.lastCrop = null;
  }

  /** One source frame with its presentation time in seconds; resolves once the frames it released are queued. */
  async acceptFrame(img, t) {
    if (this.finished) throw new Error('stream is finished');
    const c = this.resampler.push(t);
    const prev = this.held; this.held = img;
    if (c) await this._runFrame(prev, c);
  }

  async _runFrame(img, count) {
    const t0 = performance.now();
    let src = img;
    if (this.policy === 'hands') {
      const tModel = this.frameIndex / this.cfg.fps;
      const detected = this.schedule.detects();
      let hands = this.schedule.held; // skipped frames: the last detection's hands stand
      if (detected) {
        const ts = Math.max(rint(tModel * 1000), this.lastTs + 1); this.lastTs = ts; // increasing, as MediaPipe needs
        const td = performance.now(); hands = this.schedule.found(await this.detector.detect(img, ts));
        this.stats.detect_ms += performance.now() - td; this.detectMs.push(performance.now() - td);
        this.stats.detections += 1;
      }
      const c = this.handCrop.crop(img, hands, this.stats);
      c.res.time = tModel; c.res.detected = detected;
      src = c.src; this.lastCrop = c.res;
      if (this.onCrop) this.onCrop(img, c.res, tModel);
    }
    this.stats.frames += 1;
    const t1 = performance.now();
    const x = this.pre.run(src);
    this.stats.crop_ms += t1 - t0; this.stats.preprocess_ms += performance.now() - t1;
    for (let i = 0; i < count; i++) {
      this.buffer.set(x, this.filled * this.fs); this.filled += 1; this.frameIndex += 1;
      if (this.filled === this.cfg.chunk) await this._flush(null);
    }
  }

  /** Queue the buffered chunk (keep: output steps to decode; null = all); returns once queued, at most 2 in flight. */
  async _flush(keep) {
    const chunk = this.buffer; this.buffer = new Float32Array(this.cfg.chunk * this.fs); this.filled = 0;
    while (this.inFlight >= 2) await this.pending;
    this.inFlight += 1;
    const run = this.model.run(chunk); run.catch(() => {}); // awaited below, in order
    this.pending = this.pending.then(() => run).then((r) => {
      this.inFlight -= 1;
      const rows = keep === null ? r.rows : keep;
      const logits = r.logits.subarray(0, rows * r.vocab);
      this.decoder.accept(logits, r.vocab);
      this.stats.chunks += 1; this.stats.model_ms += r.ms; this.chunkMs.push(r.ms);
      if (this.debug) this.chunkLogits.push(Array.from(logits));
    });
    this.pending.catch(() => {}); // a model error surfaces at the next drain()/finish()
  }

  /** No more frames: the held frame's share, the zero-padded last chunk, then every gloss is committed. */
  async finish() {
    if (this.held !== null) {
      const c = this.resampler.finish(); const img = this.held; this.held = null;
      if (c) await this._runFrame(img, c);
    }
    if (this.filled) {
      const n = this.filled; const keep = Math.ceil(n / this.cfg.stride);
      await this._flush(keep);
    }
    await this.pending;
    this.decoder.finalize(); this.finished = true;
    return this.result();
  }

  /** Wait for the queued chunks (the decoder is then up to date with every frame given so far). */
  async drain() { await this.pending; }

  result() {
    const r = this.decoder.result(); const v = this.cfg.vocab;
    return { glosses: r.tokens.map((i) => v[i]), tokens: r.tokens,
      events: r.events.map((e) => ({ gloss: v[e.id], start: e.start, end: e.end, confidence: e.confidence })) };
  }
}

// A landmark bundle's stream (input.modality "landmarks"), as slsdk.runtime.landmark_frontend.LandmarkFrontEnd and
// slsdk.runtime.landmark_source do it: timed frames -> resample to the manifest's fps -> per model frame the 86
// points from MediaPipe Tasks for the web (hands from the HandLandmarker, lips from FaceLandmarker, body from
// PoseLandmarker; a repeated frame is extracted once) -> the kit's normalisation (a file: the whole-recording
// numbers, Pose86LookAhead; a camera: the causal Pose86Normalizer) -> chunks [1, chunk, 86, 2] through the model,
// state carried -> streaming greedy CTC. Or a landmark recording fed directly (acceptRecording).
import { FrameResampler } from './resample.js';
import { GreedyStream } from './decoder.js';
import { rint } from './preprocess.js';
import { HandSchedule } from './hands.js';
import { NUM_POINTS, Pose86LookAhead, Pose86Normalizer, assemblePose86, assignHands, normalizePose86, partMissing,
  resampleIndices } from './landmarks.js';

/** MediaPipe results -> points [[x, y, z]] in frame pixels (float32, as the Python runtime keeps them). */
const inPixels = (pts, w, h) => pts.map((p) => [Math.fround(p.x * w), Math.fround(p.y * h), Math.fround(p.z)]);

/** Per frame the 86 pixel points, with slsdk.runtime.pose86_landmarks.Pose86Landmarker's models and settings:
 * hand (VIDEO mode, 2 hands, 0.5 thresholds; detection skipped as the runtime's default CropConfig does:
 * detect_every 2, "search"), face (IMAGE mode, FACE_MODE in Python: 1 face) and pose (VIDEO mode, 1 person). */
export class Pose86Extractor {
  /** vision: the @mediapipe/tasks-vision module; fileset: its wasm; models: {hand, face, pose} .task bytes;
   * crop: the hand landmarker's settings (cropConfig()). */
  static async create(vision, fileset, models, crop) {
    const base = (bytes) => ({ modelAssetBuffer: bytes, delegate: 'CPU' });
    const hand = await vision.HandLandmarker.createFromOptions(fileset, {
      baseOptions: base(models.hand), runningMode: 'VIDEO', numHands: crop.num_hands,
      minHandDetectionConfidence: crop.min_detection_confidence, minHandPresenceConfidence: crop.min_presence_confidence,
      minTrackingConfidence: crop.min_tracking_confidence });
    const face = await vision.FaceLandmarker.createFromOptions(fileset, {
      baseOptions: base(models.face), runningMode: 'IMAGE', numFaces: 1, minFaceDetectionConfidence: 0.5,
      minFacePresenceConfidence: 0.5, minTrackingConfidence: 0.5 });
    const pose = await vision.PoseLandmarker.createFromOptions(fileset, {
      baseOptions: base(models.pose), runningMode: 'VIDEO', numPoses: 1, minPoseDetectionConfidence: 0.5,
      minPosePresenceConfidence: 0.5, minTrackingConfidence: 0.5 });
    return new Pose86Extractor(hand, face, pose, crop);
  }

  constructor(hand, face, pose, crop) {
    this.hand = hand; this.face = face; this.pose = pose; this.crop = crop;
    this.schedule = new HandSchedule(crop);
    this.ms = { hands: 0, lips: 0, body: 0 }; this.detections = 0; this.lastSent = -1; this.base = 0;
    this.reset();
  }

  /** A new video: the hand schedule starts again; the landmarkers are not re-created (Python's are), so their
   * VIDEO-mode timestamps go on from the last video's (MediaPipe needs them increasing). */
  reset() { this.schedule.reset(); this.base = this.lastSent + 1; }

  /** One RGBA/RGB image {data, width, height} at ts ms (increasing) -> {points: Float32Array(172), hands (the
   * landmarks per hand, pixels: a fusion stream crops around them), detected (the hand landmarker ran), face, body}. */
  frame(img, ts) {
    ts = Math.max(ts + this.base, this.lastSent + 1); this.lastSent = ts;
    const { width: w, height: h } = img;
    const data = img.data instanceof Uint8ClampedArray ? img.data : new Uint8ClampedArray(img.data.buffer);
    const image = new ImageData(data, w, h);
    const detected = this.schedule.detects();
    let hands = this.schedule.held; // skipped frames: the last detection's hands stand
    const t0 = performance.now();
    if (detected) {
      const r = this.hand.detectForVideo(image, ts);
      const labels = r.handedness || r.handednesses || [];
      hands = this.schedule.found((r.landmarks || []).map((lm, i) => ({ points: inPixels(lm, w, h), label: labels[i]?.[0]?.categoryName ?? '' })));
      this.detections += 1;
    }
    const t1 = performance.now();
    const pr = this.pose.detectForVideo(image, ts);
    const body = pr.landmarks?.length ? inPixels(pr.landmarks[0], w, h) : null;
    const t2 = performance.now();
    const fr = this.face.detect(image);
    const face = fr.faceLandmarks?.length ? inPixels(fr.faceLandmarks[0], w, h) : null;
    const t3 = performance.now();
    this.ms.hands += t1 - t0; this.ms.body += t2 - t1; this.ms.lips += t3 - t2;
    const [right, left] = assignHands(hands, body);
    return { points: assemblePose86(right, left, face, body), hands: hands.map((x) => x.points), detected, face, body };
  }
}

export class LandmarkStream {
  static modality = 'landmarks';

  /**
   * cfg: parseManifest(...) of a landmark bundle; model: {run(chunk) -> Promise<{logits, rows, vocab, ms}>};
   * extractor: a Pose86Extractor (needed for video frames); lookAhead: true for a file (the numbers of
   * normalising the whole recording), false for a camera (causal); onLandmarks(img, extracted, tModel): overlays;
   * debug: keep every chunk's logits, the model's input frames and the extracted pixel points.
   */
  constructor(cfg, model, { extractor = null, lookAhead = true, maxGap = null, onLandmarks = null, debug = false } = {}) {
    const want = new.target.modality;
    if (cfg.modality !== want) throw new Error(`${new.target.name} needs a ${want} bundle, got input.modality ${cfg.modality}`);
    this.cfg = cfg; this.model = model; this.extractor = extractor; this.onLandmarks = onLandmarks; this.debug = debug;
    if (extractor) extractor.reset();
    this.policy = 'landmarks';
    this.lookAhead = lookAhead;
    this.normalizer = lookAhead ? new Pose86LookAhead() : new Pose86Normalizer();
    this.resampler = new FrameResampler(cfg.fps, maxGap);
    this.decoder = new GreedyStream({ blank: cfg.blank, frameShift: cfg.frameShift });
    this.fs = 2 * NUM_POINTS;
    this.buffer = new Float32Array(cfg.chunk * this.fs); this.filled = 0;
    this.held = null; this.frameIndex = 0; this.lastTs = -1;
    this.stats = { frames: 0, frames_with_hands: 0, detections: 0, detect_ms: 0, chunks: 0, model_ms: 0, crop_ms: 0, preprocess_ms: 0,
      found: { right_hand: 0, left_hand: 0, lips: 0, body: 0 } };
    this.chunkLogits = []; this.chunkMs = []; this.detectMs = []; this.inputs = []; this.points = [];
    this.pending = Promise.resolve(); this.inFlight = 0; this.finished = false;
  }

  /** One source frame with its presentation time in seconds (as Stream.acceptFrame). */
  async acceptFrame(img, t) {
    if (this.finished) throw new Error('stream is finished');
    if (!this.extractor) throw new Error('a landmark stream of video frames needs the MediaPipe landmarkers (Pose86Extractor)');
    const c = this.resampler.push(t);
    const prev = this.held; this.held = img;
    if (c) await this._runFrame(prev, c);
  }

  async _runFrame(img, count) {
    const tModel = this.frameIndex / this.cfg.fps;
    const ts = Math.max(rint(tModel * 1000), this.lastTs + 1); this.lastTs = ts; // the model frame's time, increasing
    const t0 = performance.now();
    const ex = this.extractor.frame(img, ts);
    const ms = performance.now() - t0;
    this.stats.detect_ms += ms; this.detectMs.push(ms); this.stats.crop_ms += ms; this.stats.detections = this.extractor.detections;
    this.stats.frames += 1; this.stats.frames_with_hands += ex.hands.length > 0;
    partMissing(ex.points).forEach((m, j) => { if (!m) this.stats.found[['right_hand', 'left_hand', 'lips', 'body'][j]] += 1; });
    if (this.debug) for (let i = 0; i < count; i++) this.points.push(Array.from(ex.points));
    if (this.onLandmarks) this.onLandmarks(img, ex, tModel);
    this._pixels(img, ex, count, tModel);
    for (let i = 0; i < count; i++) await this._push(ex.points);
  }

  /** A frame's pixels on their way past the landmarks (count model frames of it; the fusion stream keeps them). */
  _pixels(img, ex, count, tModel) {} // eslint-disable-line no-unused-vars

  /** One pixel frame (Float32Array(172)) through the normaliser into the chunk buffer. */
  async _push(points) {
    const t0 = performance.now();
    const out = this.lookAhead ? this.normalizer.push(points) : [this.normalizer.push(points)];
    this.stats.preprocess_ms += performance.now() - t0;
    for (const x of out) await this._add(x);
  }

  async _add(x) {
    if (this.debug) this.inputs.push(Array.from(x));
    this._put(x, this.filled); this.filled += 1; this.frameIndex += 1;
    if (this.filled === this.cfg.chunk) await this._flush(null);
  }

  /** A normalised landmark frame into row i of the chunk buffer. */
  _put(x, i) { this.buffer.set(x, i * this.fs); }

  /** A landmark recording fed directly, as `slsdk run BUNDLE FILE.pose` feeds it (slsdk.runtime.landmark_source):
   * frames (Float32Array(172) pixel points each) at sourceFps, normalised as a whole recording, resampled to the
   * manifest's fps (nearest frame), chunked; then finish(). */
  async acceptRecording(frames, sourceFps) {
    if (!frames.length) throw new Error('the landmark recording has no frames');
    const norm = normalizePose86(frames);
    for (const i of resampleIndices(frames.length, sourceFps, this.cfg.fps)) await this._add(norm[i]);
    this.stats.frames = frames.length;
    return this.finish();
  }

  async _flush(keep) {
    const chunk = this.buffer; this.buffer = new Float32Array(this.cfg.chunk * this.fs); this.filled = 0;
    while (this.inFlight >= 2) await this.pending;
    this.inFlight += 1;
    const run = this.model.run(chunk); run.catch(() => {});
    this.pending = this.pending.then(() => run).then((r) => {
      this.inFlight -= 1;
      const rows = keep === null ? r.rows : keep;
      const logits = r.logits.subarray(0, rows * r.vocab);
      this.decoder.accept(logits, r.vocab);
      this.stats.chunks += 1; this.stats.model_ms += r.ms; this.chunkMs.push(r.ms);
      if (this.debug) this.chunkLogits.push(Array.from(logits));
    });
    this.pending.catch(() => {});
  }

  /** No more frames: the held frame's share, the frames the look-ahead held, the zero-padded last chunk. */
  async finish() {
    if (this.held !== null) {
      const c = this.resampler.finish(); const img = this.held; this.held = null;
      if (c) await this._runFrame(img, c);
    }
    if (this.lookAhead) for (const x of this.normalizer.finish()) await this._add(x);
    if (this.filled) await this._flush(Math.ceil(this.filled / this.cfg.stride));
    await this.pending;
    this.decoder.finalize(); this.finished = true;
    return this.result();
  }

  async drain() { await this.pending; }

  result() {
    const r = this.decoder.result(); const v = this.cfg.vocab;
    return { glosses: r.tokens.map((i) => v[i]), tokens: r.tokens,
      events: r.events.map((e) => ({ gloss: v[e.id], start: e.start, end: e.end, confidence: e.confidence })) };
  }
}

// A fusion bundle's stream (input.modality "fusion"), as slsdk.runtime.landmark_frontend.FusionFrontEnd does it:
// timed frames -> resample to the manifest's fps -> per model frame ONE hand pass (the Pose86Extractor's
// HandLandmarker, with the bundle's crop settings when it crops hands) gives both the hand crop (HandCrop: the
// box rule of an RGB bundle's stream, js/stream.js) and the hand points of the 86-point layout, with lips
// (FaceLandmarker) and body (PoseLandmarker) -> the crop (or the whole frame, crop.policy "full") preprocessed as
// an RGB bundle's frames, the points normalised as a landmark bundle's (js/landmark_stream.js: a file looks ahead,
// a camera not) -> frame k paired with landmark frame k (with the look-ahead the preprocessed frames wait for
// their landmarks) -> chunks of both inputs through the model (one array: chunk frames, then chunk landmark
// frames; js/model.js splits it), state carried -> streaming greedy CTC.
import { LandmarkStream } from './landmark_stream.js';
import { HandCrop } from './stream.js';
import { cropConfig } from './hands.js';
import { NUM_POINTS } from './landmarks.js';
import { Preprocessor } from './preprocess.js';

export class FusionStream extends LandmarkStream {
  static modality = 'fusion';

  /** cfg: parseManifest(...) of a fusion bundle; the options of LandmarkStream, plus onCrop(img, cropResult, tModel)
   * per cropped frame. The extractor's hand landmarker is the stream's one hand pass: it must run with the bundle's
   * crop settings (cfg.crop) when the bundle crops hands (fusionHandConfig). */
  constructor(cfg, model, { onCrop = null, ...opts } = {}) {
    super(cfg, model, opts);
    this.policy = 'fusion'; this.crops = cfg.crop.policy === 'hands'; this.onCrop = onCrop;
    this.pre = new Preprocessor(cfg.input);
    this.handCrop = this.crops ? new HandCrop(cfg) : null;
    this.frameSize = this.pre.frameSize; this.pointSize = 2 * NUM_POINTS;
    this.fs = this.frameSize + this.pointSize; // a chunk: chunk * frameSize frames, then chunk * pointSize points
    this.buffer = new Float32Array(cfg.chunk * this.fs);
    this.waiting = []; // preprocessed model frames before their landmarks (the look-ahead holds those)
    this.cropStats = { frames_with_hands: 0, total_hands: 0, held_frames: 0, fallback_frames: 0 }; // HandCrop's counts
    Object.assign(this.stats, { total_hands: 0, held_frames: 0, fallback_frames: 0 });
    this.lastCrop = null; this.boxes = [];
  }

  async acceptRecording() {
    throw new Error('a fusion bundle (input.modality "fusion") takes the video frames as well as their landmarks; '
      + 'a landmark recording has no frames: give it the video');
  }

  /** The frame the landmarks came from: its hand crop (from the hands of the same pass) or the whole frame,
   * preprocessed, waiting `count` times for the landmark frames the normaliser gives out. */
  _pixels(img, ex, count, tModel) {
    const t0 = performance.now();
    let src = img;
    if (this.crops) {
      const c = this.handCrop.crop(img, ex.hands, this.cropStats);
      for (const k of ['total_hands', 'held_frames', 'fallback_frames']) this.stats[k] = this.cropStats[k];
      c.res.time = tModel; c.res.detected = ex.detected;
      src = c.src; this.lastCrop = c.res;
      if (this.debug) this.boxes.push(c.res.box); // per frame extracted (a repeated frame once)
      if (this.onCrop) this.onCrop(img, c.res, tModel);
    }
    const t1 = performance.now();
    const x = this.pre.run(src);
    this.stats.crop_ms += t1 - t0; this.stats.preprocess_ms += performance.now() - t1;
    for (let i = 0; i < count; i++) this.waiting.push(x);
  }

  /** Landmark frame x with the oldest waiting frame (its own: frames and landmarks go in and come out in order). */
  _put(x, i) {
    const f = this.waiting.shift();
    if (!f) throw new Error('a landmark frame without its video frame (the fusion pairing is broken)');
    this.buffer.set(f, i * this.frameSize);
    this.buffer.set(x, this.cfg.chunk * this.frameSize + i * this.pointSize);
  }
}

/** The settings of a fusion bundle's hand landmarker: the bundle's crop settings when it crops hands (the crop
 * pass is the hand pass), else the defaults the landmarks' own hand trackers use (as for a landmark bundle). */
export function fusionHandConfig(cfg) { return cfg.crop.policy === 'hands' ? cfg.crop : cropConfig({ policy: 'full' }); }

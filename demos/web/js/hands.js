// The signing-space box around the hands: slsdk.runtime.hands.HandCropper's rule, smoothing and fallback
// (demos/README.md, "Client rules" step 3). Landmarks are per hand [[x, y, z] x 21] in frame pixels
// (MediaPipe's normalised x * width, y * height, stored as float32 as the Python runtime stores them).
import { rint } from './preprocess.js';

// The defaults of slsdk.runtime.crop.CropConfig, for keys a manifest leaves out (tests/web checks they agree).
export const CROP_DEFAULTS = {
  policy: 'hands', margin: 1.5, min_size: 0.5, square: true, smoothing: 0.3, hold_frames: 15, fallback: 'center',
  include_face: false, face_extent: 2.5, num_hands: 2, min_detection_confidence: 0.5, min_presence_confidence: 0.5,
  min_tracking_confidence: 0.5, detect_every: 2, detect_policy: 'search',
};

export function cropConfig(d = {}) {
  const unknown = Object.keys(d).filter((k) => !(k in CROP_DEFAULTS));
  if (unknown.length) throw new Error(`unknown crop keys in the manifest: ${unknown.join(', ')}`);
  const c = { ...CROP_DEFAULTS, ...d };
  if (!['hands', 'full'].includes(c.policy)) throw new Error(`crop.policy must be "hands" or "full", got ${c.policy}`);
  if (!['center', 'last'].includes(c.fallback)) throw new Error(`crop.fallback must be "center" or "last", got ${c.fallback}`);
  if (!(c.smoothing > 0 && c.smoothing <= 1)) throw new Error(`crop.smoothing must be in (0, 1], got ${c.smoothing}`);
  if (!['search', 'hold'].includes(c.detect_policy)) throw new Error(`crop.detect_policy must be "search" or "hold", got ${c.detect_policy}`);
  if (!(Number.isInteger(c.detect_every) && c.detect_every >= 1)) throw new Error(`crop.detect_every must be an integer >= 1, got ${c.detect_every}`);
  return c;
}

/** Integer square box of ~side centred near (cx, cy), shifted (not shrunk) into the frame. */
export function squareBox(cx, cy, side, w, h) {
  const s = Math.min(Math.max(1, Math.ceil(side - 1e-6)), w, h);
  let x0 = rint(cx - s / 2); let y0 = rint(cy - s / 2);
  x0 = Math.min(Math.max(x0, 0), w - s); y0 = Math.min(Math.max(y0, 0), h - s);
  return [x0, y0, x0 + s, y0 + s];
}

/** [cx, cy, side] of the signing-space square for these hands (landmarks clipped to the frame). */
export function handsBoxParams(hands, w, h, c) {
  let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
  for (const lm of hands) for (const p of lm) {
    const x = Math.min(Math.max(p[0], 0), w); const y = Math.min(Math.max(p[1], 0), h);
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
  }
  if (c.include_face) {
    let palm = 0;
    for (const lm of hands) {
      const dx = Math.fround(lm[9][0] - lm[0][0]); const dy = Math.fround(lm[9][1] - lm[0][1]);
      palm = Math.max(palm, Math.fround(Math.sqrt(dx * dx + dy * dy)));
    }
    y0 = Math.max(0, y0 - c.face_extent * palm);
  }
  const short = Math.min(w, h);
  let side = Math.max(x1 - x0, y1 - y0) * c.margin;
  side = Math.min(Math.max(side, c.min_size * short, 1), short);
  const cx = Math.min(Math.max((x0 + x1) / 2, side / 2), w - side / 2);
  const cy = Math.min(Math.max((y0 + y1) / 2, side / 2), h - side / 2);
  return [cx, cy, side];
}

/** Per-stream box state: EMA smoothing, hold after the hands vanish, then the fallback. */
export class BoxTracker {
  constructor(config) { this.c = cropConfig(config); this.reset(); }

  reset() { this.state = null; this.missing = 0; }

  /** hands: landmarks per hand found in this frame. Returns {box, rawBox, status, handsFound}. */
  update(hands, w, h) {
    const c = this.c; let target; let status; let raw = null;
    if (hands.length) {
      target = handsBoxParams(hands, w, h, c); raw = squareBox(...target, w, h);
      this.missing = 0; status = 'hands';
    } else {
      this.missing += 1;
      if (this.state !== null && (this.missing <= c.hold_frames || c.fallback === 'last')) {
        target = this.state; status = this.missing <= c.hold_frames ? 'held' : 'fallback';
      } else {
        target = [w / 2, h / 2, Math.min(w, h)]; status = 'fallback';
      }
    }
    let st;
    if (this.state === null || status === 'held') st = target;
    else { const a = c.smoothing; st = target.map((t, i) => a * t + (1 - a) * this.state[i]); }
    const side = Math.min(st[2], w, h);
    const cx = Math.min(Math.max(st[0], side / 2), w - side / 2);
    const cy = Math.min(Math.max(st[1], side / 2), h - side / 2);
    this.state = [cx, cy, side];
    return { box: squareBox(cx, cy, side, w, h), rawBox: raw, status, handsFound: hands.length };
  }
}

/** Which frames the hand landmarker runs on (slsdk.runtime.hand_tracker.HandCropper's schedule): every one
 * (detect_every 1); "hold": every N-th; "search": every one while hands are found, every N-th after a detection
 * found none. On the frames it skips, the last detection's hands stand. One per stream (or per landmarker). */
export class HandSchedule {
  constructor(crop) { this.every = crop.detect_every; this.policy = crop.detect_policy; this.reset(); }

  reset() { this.frameNo = 0; this.sinceEmpty = null; this.held = []; }

  /** Whether this frame runs the landmarker (call once per frame, in order). */
  detects() {
    let detected = true;
    if (this.every > 1) detected = this.policy === 'hold' ? this.frameNo % this.every === 0 : (this.sinceEmpty === null || this.sinceEmpty >= this.every);
    this.frameNo += 1;
    if (!detected) this.sinceEmpty = (this.sinceEmpty || 0) + 1;
    return detected;
  }

  /** The hands a detection found (a frame detects() said yes to); returns them. */
  found(hands) { this.held = hands; this.sinceEmpty = hands.length ? null : 1; return hands; }
}

/** MediaPipe HandLandmarker results -> landmarks in frame pixels (float32, as the Python runtime keeps them). */
export function landmarksInPixels(result, w, h) {
  return (result.landmarks || []).map((lm) => lm.map((p) => [Math.fround(p.x * w), Math.fround(p.y * h), Math.fround(p.z)]));
}

// The 86-point landmark layout of a landmark bundle (input.modality "landmarks", input.landmarks.layout "pose86")
// and its normalisation "isharah-pose86": slsdk.landmarks (POSE86, normalize_pose86, Pose86Normalizer),
// slsdk.runtime.landmark_frontend.Pose86LookAhead, slsdk.runtime.landmark_source.resample_indices and
// slsdk.runtime.pose86_landmarks (assign_hands, assemble_pose86), rule for rule.
//
// A frame is a Float32Array of 86 * 2 (x, y in pixels; a part MediaPipe did not find is all zeros). The arithmetic
// is numpy's in float32, operation for operation (every result rounded with Math.fround; sums and means in numpy's
// pairwise order over each part's contiguous [N, 2] block), so the numbers are the Python runtime's bit for bit and
// the kit's "sums to exactly zero" tests pick the same frames.

const f32 = Math.fround;

export const NUM_POINTS = 86;
export const LAYOUT = 'pose86';
export const NORMALISATION = 'isharah-pose86';
/** [name, start, stop] in order: right hand 21, left hand 21, outer lips 19 (FaceMesh), body 25 (Pose 0-24). */
export const PARTS = [['right_hand', 0, 21], ['left_hand', 21, 42], ['lips', 42, 61], ['body', 61, 86]];
const HANDS = [PARTS[0], PARTS[1]];
/** slsdk.landmarks.LIPS_FACEMESH: the kit's outer-lip FaceMesh indices, sorted. */
export const LIPS_FACEMESH = [0, 17, 37, 39, 40, 61, 84, 91, 146, 181, 185, 267, 269, 270, 291, 314, 321, 375, 405];
const RIGHT_WRIST = 16; const LEFT_WRIST = 15; // MediaPipe Pose indices

/** numpy's float32 pairwise sum (its add.reduce) of a[off .. off + n). */
export function pairwiseSum32(a, off, n) {
  if (n < 8) {
    let r = 0;
    for (let i = 0; i < n; i++) r = f32(r + a[off + i]);
    return r;
  }
  if (n <= 128) {
    const r = new Float32Array(8);
    for (let j = 0; j < 8; j++) r[j] = a[off + j];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = f32(r[j] + a[off + i + j]);
    let res = f32(f32(f32(r[0] + r[1]) + f32(r[2] + r[3])) + f32(f32(r[4] + r[5]) + f32(r[6] + r[7])));
    for (; i < n; i++) res = f32(res + a[off + i]);
    return res;
  }
  let n2 = Math.floor(n / 2); n2 -= n2 % 8;
  return f32(pairwiseSum32(a, off, n2) + pairwiseSum32(a, off + n2, n - n2));
}

/** The sum of a part's block of a frame (numpy's frame[start:stop].sum()). */
const partSum = (frame, [, start, stop]) => pairwiseSum32(frame, 2 * start, 2 * (stop - start));

/** slsdk.landmarks._normalize_part on one frame's part: src[2 * start .. 2 * stop) -> dst (same place). */
export function normalizePart(src, dst, start, stop) {
  const n = stop - start; const o = 2 * start; const x = new Float32Array(2 * n);
  const x0 = src[o]; const y0 = src[o + 1];
  let mx = Infinity; let my = Infinity;
  for (let i = 0; i < n; i++) {
    x[2 * i] = f32(src[o + 2 * i] - x0); x[2 * i + 1] = f32(src[o + 2 * i + 1] - y0);
    mx = Math.min(mx, x[2 * i]); my = Math.min(my, x[2 * i + 1]);
  }
  let top = -Infinity;
  for (let i = 0; i < n; i++) {
    x[2 * i] = f32(x[2 * i] - mx); x[2 * i + 1] = f32(x[2 * i + 1] - my);
    top = Math.max(top, x[2 * i], x[2 * i + 1]);
  }
  const ok = top > 0;
  for (let i = 0; i < 2 * n; i++) x[i] = ok ? f32(x[i] / top) : 0;
  const mean = f32(pairwiseSum32(x, 0, 2 * n) / (2 * n));
  let peak = 0;
  for (let i = 0; i < 2 * n; i++) { x[i] = f32(x[i] - mean); peak = Math.max(peak, Math.abs(x[i])); }
  const go = ok && peak > 0;
  for (let i = 0; i < 2 * n; i++) dst[o + i] = go ? f32(f32(x[i] / peak) * 0.5) : 0;
}

/** [4] booleans: which parts are missing in a frame (their coordinates sum to 0: slsdk.landmarks.part_missing). */
export function partMissing(frame) { return PARTS.map((p) => partSum(frame, p) === 0); }

/** slsdk.landmarks.Pose86Normalizer: causal, frame by frame (a missing part repeats its last normalised frame,
 * zeros before it was ever found). push(frame) -> a new Float32Array(172). */
export class Pose86Normalizer {
  constructor() { this.reset(); }

  reset() { this.last = new Float32Array(2 * NUM_POINTS); }

  push(frame) {
    if (frame.length !== 2 * NUM_POINTS) throw new Error(`a landmark frame is ${NUM_POINTS} x 2 numbers, got ${frame.length}`);
    const f = frame instanceof Float32Array ? frame : Float32Array.from(frame);
    for (const p of PARTS) if (partSum(f, p) !== 0) normalizePart(f, this.last, p[1], p[2]);
    return this.last.slice();
  }
}

/** slsdk.runtime.landmark_frontend.Pose86LookAhead: the whole-recording normalisation on a stream. push(frame)
 * returns the frames settled now (a list, in order); finish() the rest. A frame is held while a hand has not been
 * found at or after it (the kit fills a hand missing from the start with the first frame that has it). */
export class Pose86LookAhead {
  constructor() { this.causal = new Pose86Normalizer(); this.reset(); }

  reset() { this.causal.reset(); this.held = []; this.open = HANDS.map(() => 0); }

  push(frame) {
    const f = this.causal.push(frame);
    this.held.push(f);
    const k = this.held.length - 1;
    HANDS.forEach((p, j) => {
      if (partSum(f, p) !== 0) {
        const block = f.subarray(2 * p[1], 2 * p[2]);
        for (let i = this.open[j]; i < k; i++) this.held[i].set(block, 2 * p[1]);
        this.open[j] = k + 1;
      }
    });
    return this._release(Math.min(...this.open));
  }

  finish() {
    const n = this.held.length;
    if (n) {
      const last = this.held[n - 1];
      HANDS.forEach((p, j) => {
        for (let i = this.open[j]; i < n - 1; i++) this.held[i].set(last.subarray(2 * p[1], 2 * p[2]), 2 * p[1]);
      });
    }
    const out = this._release(n);
    this.reset();
    return out;
  }

  _release(n) {
    if (n <= 0) return [];
    const out = this.held.slice(0, n); this.held = this.held.slice(n);
    this.open = this.open.map((o) => o - n);
    return out;
  }
}

/** slsdk.landmarks.normalize_pose86 on a whole recording (a list of frames): forward fill, then the kit's
 * backward pass for the hands (a frame whose normalised hand sums to exactly 0 takes the next frame's). */
export function normalizePose86(frames) {
  const c = new Pose86Normalizer();
  const out = frames.map((f) => c.push(f));
  for (const p of HANDS) {
    for (let i = out.length - 2; i >= 0; i--) {
      if (partSum(out[i], p) === 0) out[i].set(out[i + 1].subarray(2 * p[1], 2 * p[2]), 2 * p[1]);
    }
  }
  return out;
}

/** Round half to even (numpy.rint). */
function rint(x) { const r = Math.round(x); return (r - x === 0.5 && r % 2 !== 0) ? r - 1 : r; }

/** slsdk.runtime.landmark_source.resample_indices: the source frame of each model frame (nearest by time). */
export function resampleIndices(n, sourceFps, fps) {
  if (n <= 0) return [];
  if (!sourceFps || Math.abs(sourceFps - fps) < 1e-6) return Array.from({ length: n }, (_, i) => i);
  const count = Math.max(1, Math.floor((n - 1) / sourceFps * fps + 1e-9) + 1);
  const step = sourceFps / fps;
  return Array.from({ length: count }, (_, i) => Math.min(rint(i * step), n - 1));
}

const dist32 = (p, q) => { const dx = f32(p[0] - q[0]); const dy = f32(p[1] - q[1]); return f32(Math.sqrt(f32(f32(dx * dx) + f32(dy * dy)))); };

/** slsdk.runtime.pose86_landmarks.assign_hands: hands [{points: [[x, y, z] x 21], label: "Left"|"Right"}] ->
 * [right, left] (points or null): by the nearer Pose wrist when body (Pose points) is given, else by the
 * HandLandmarker's label, ties broken by image x. */
export function assignHands(hands, body) {
  hands = hands.slice(0, 2);
  if (!hands.length) return [null, null];
  if (body) {
    const wr = body[RIGHT_WRIST]; const wl = body[LEFT_WRIST];
    const d = hands.map((h) => [dist32(h.points[0], wr), dist32(h.points[0], wl)]);
    if (hands.length === 1) return d[0][0] <= d[0][1] ? [hands[0].points, null] : [null, hands[0].points];
    return d[0][0] + d[1][1] <= d[0][1] + d[1][0] ? [hands[0].points, hands[1].points] : [hands[1].points, hands[0].points];
  }
  if (hands.length === 1) return hands[0].label === 'Right' ? [hands[0].points, null] : [null, hands[0].points];
  const [a, b] = hands;
  if (a.label !== b.label) return a.label === 'Right' ? [a.points, b.points] : [b.points, a.points];
  return a.points[0][0] <= b.points[0][0] ? [a.points, b.points] : [b.points, a.points];
}

/** slsdk.runtime.pose86_landmarks.assemble_pose86: one frame's Float32Array(172) from the parts found (null:
 * missing, zeros): hands [21][>=2], the face mesh [>=468][>=2] (lips taken from it), Pose [>=25][>=2]. */
export function assemblePose86(right, left, face, body) {
  const out = new Float32Array(2 * NUM_POINTS);
  const put = (start, pts) => pts.forEach((p, i) => { out[2 * (start + i)] = p[0]; out[2 * (start + i) + 1] = p[1]; });
  if (right) put(0, right.slice(0, 21));
  if (left) put(21, left.slice(0, 21));
  if (face) put(42, LIPS_FACEMESH.map((i) => face[i]));
  if (body) put(61, body.slice(0, 25));
  return out;
}

/** Refuse a manifest input.landmarks section this page does not produce (slsdk.runtime.landmark_source's rule). */
export function checkLandmarkSpec(spec, bad, modality = 'landmarks') {
  if (!spec || typeof spec !== 'object') bad(`input.modality is "${modality}" but the input.landmarks section is missing`);
  if (spec.layout !== LAYOUT || spec.normalisation !== NORMALISATION || spec.points !== NUM_POINTS || spec.dims !== 2) {
    bad(`input.landmarks: ${spec.points}x${spec.dims} points in layout ${JSON.stringify(spec.layout)} normalised by `
      + `${JSON.stringify(spec.normalisation)}; this page produces ${NUM_POINTS}x2 ${LAYOUT} (${NORMALISATION})`);
  }
  return spec;
}

// Frame preprocessing exactly as the manifest's "input" section says (demos/README.md, "Client rules" step 4):
// shorter side to input.resize_shorter (antialiased bilinear, rounded to uint8), centre crop S x S, then
// (x - 255 * mean) / (255 * std) per channel into a float32 C x S x S plane (layout NTCHW for the chunk).
// The arithmetic follows the Python runtime's (slsdk.preprocess.resize_image and the hand crops: PIL's fixed-point
// bilinear, width then height), so the tensors are the same bit for bit. Images are {data, width, height, channels} with channels 3 (RGB) or 4 (RGBA).

const f32 = Math.fround;

/** Round half to even (numpy.rint / torch.round / Python round). */
export function rint(x) {
  const r = Math.round(x);
  return (r - x === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

/** Antialiased bilinear (triangle) taps of slsdk.preprocess / PIL: centre (i + 0.5) * scale, support
 * max(scale, 1), weights max(0, 1 - |x| / support) normalised to 1. {idx, wts (float64), k, xmin, n}. */
export function aaTaps(inSize, outSize) {
  const scale = inSize / outSize; const support = Math.max(scale, 1);
  const xmin = new Int32Array(outSize); const n = new Int32Array(outSize); let k = 0;
  for (let o = 0; o < outSize; o++) {
    const c = (o + 0.5) * scale;
    xmin[o] = Math.max(Math.trunc(c - support + 0.5), 0);
    n[o] = Math.min(Math.trunc(c + support + 0.5), inSize) - xmin[o];
    k = Math.max(k, n[o]);
  }
  const idx = new Int32Array(outSize * k); const wts = new Float64Array(outSize * k);
  for (let o = 0; o < outSize; o++) {
    const c = (o + 0.5) * scale; let sum = 0;
    for (let j = 0; j < k; j++) {
      const i = xmin[o] + j; idx[o * k + j] = Math.min(i, inSize - 1);
      const w = j < n[o] ? Math.max(0, 1 - Math.abs((i - c + 0.5) / support)) : 0;
      wts[o * k + j] = w; sum += w;
    }
    for (let j = 0; j < k; j++) wts[o * k + j] /= sum;
  }
  return { idx, wts, k, xmin, n };
}

const tapCache = new Map();
function cached(kind, inSize, outSize, make) {
  const key = `${kind}:${inSize}:${outSize}`;
  if (!tapCache.has(key)) tapCache.set(key, make(inSize, outSize));
  return tapCache.get(key);
}

const PRECISION_BITS = 22; // PIL's 8-bit resampling: fixed-point coefficients, horizontal pass first

function pilCoeffs(inSize, outSize) { // Pillow's precompute_coeffs + normalize_coeffs_8bpc, operation for operation
  const t = aaTaps(inSize, outSize); const scale = inSize / outSize; const ss = 1 / Math.max(scale, 1);
  const kk = new Int32Array(t.idx.length);
  for (let o = 0; o < outSize; o++) {
    const c = (o + 0.5) * scale; const w = new Float64Array(t.n[o]); let ww = 0;
    for (let j = 0; j < t.n[o]; j++) { w[j] = Math.max(0, 1 - Math.abs((j + t.xmin[o] - c + 0.5) * ss)); ww += w[j]; }
    for (let j = 0; j < t.n[o]; j++) { const v = ww !== 0 ? w[j] / ww : w[j]; kk[o * t.k + j] = Math.trunc((v < 0 ? -0.5 : 0.5) + v * (1 << PRECISION_BITS)); }
  }
  return { ...t, kk };
}

function clip8(v) {
  if (v >= (1 << PRECISION_BITS) * 256) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / (1 << PRECISION_BITS));
}

/** Shorter-side resize as slsdk.preprocess.resize_shorter (Pillow's BILINEAR, fixed point, width pass then
 * height pass, each only when that side changes), bit for bit. */
export function resize(img, nh, nw) {
  const { data, channels: ch, width: w, height: h } = img;
  const half = 1 << (PRECISION_BITS - 1);
  let cur = data; let cc = ch; let cw = w; let first = 0; let rows = h;
  const tv = nh !== h ? cached('pil', h, nh, pilCoeffs) : null;
  if (tv) { first = tv.xmin[0]; rows = tv.xmin[nh - 1] + tv.n[nh - 1] - first; }
  if (nw !== w) { // along the width, over the rows the height pass needs
    const t = cached('pil', w, nw, pilCoeffs);
    const out = new Uint8Array(rows * nw * 3);
    for (let y = 0; y < rows; y++) for (let o = 0; o < nw; o++) {
      let s0 = half; let s1 = half; let s2 = half;
      for (let j = 0; j < t.n[o]; j++) {
        const k = t.kk[o * t.k + j]; const p = ((first + y) * w + t.xmin[o] + j) * ch;
        s0 += data[p] * k; s1 += data[p + 1] * k; s2 += data[p + 2] * k;
      }
      const d = (y * nw + o) * 3; out[d] = clip8(s0); out[d + 1] = clip8(s1); out[d + 2] = clip8(s2);
    }
    cur = out; cc = 3; cw = nw;
  } else { first = 0; }
  const res = new Uint8Array(nh * nw * 3);
  if (!tv) {
    for (let i = 0; i < nh * nw; i++) for (let c = 0; c < 3; c++) res[i * 3 + c] = cur[i * cc + c];
    return { data: res, width: nw, height: nh, channels: 3 };
  }
  const off = nw !== w ? first : 0; // the width pass kept rows first.. only
  for (let o = 0; o < nh; o++) for (let x = 0; x < cw; x++) {
    let s0 = half; let s1 = half; let s2 = half;
    for (let j = 0; j < tv.n[o]; j++) {
      const k = tv.kk[o * tv.k + j]; const p = ((tv.xmin[o] - off + j) * cw + x) * cc;
      s0 += cur[p] * k; s1 += cur[p + 1] * k; s2 += cur[p + 2] * k;
    }
    const d = (o * cw + x) * 3; res[d] = clip8(s0); res[d + 1] = clip8(s1); res[d + 2] = clip8(s2);
  }
  return { data: res, width: nw, height: nh, channels: 3 };
}

/** A square box of the frame ([x0, y0, x1, y1], half-open) resized to size x size, bit for bit as the Python
 * hand crop (slsdk.runtime.crop.extract_crop: PIL's BILINEAR resize, which antialiases when shrinking). */
export function cropSquare(img, box, size) {
  const [x0, y0, x1, y1] = box; const n = x1 - x0;
  if (n !== y1 - y0) throw new Error(`crop box must be square, got ${box}`);
  const { data, channels: ch, width: W } = img;
  if (n === size) {
    const out = new Uint8Array(size * size * 3);
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) for (let c = 0; c < 3; c++)
      out[(y * n + x) * 3 + c] = data[((y0 + y) * W + x0 + x) * ch + c];
    return { data: out, width: size, height: size, channels: 3 };
  }
  const t = cached('pil', n, size, pilCoeffs);
  const first = t.xmin[0]; const last = t.xmin[size - 1] + t.n[size - 1]; const rows = last - first;
  const half = 1 << (PRECISION_BITS - 1);
  const tmp = new Uint8Array(rows * size * 3); // horizontal pass over the rows the vertical pass needs
  for (let y = 0; y < rows; y++) for (let o = 0; o < size; o++) {
    let s0 = half; let s1 = half; let s2 = half;
    for (let j = 0; j < t.n[o]; j++) {
      const k = t.kk[o * t.k + j]; const p = ((y0 + first + y) * W + x0 + t.xmin[o] + j) * ch;
      s0 += data[p] * k; s1 += data[p + 1] * k; s2 += data[p + 2] * k;
    }
    const d = (y * size + o) * 3; tmp[d] = clip8(s0); tmp[d + 1] = clip8(s1); tmp[d + 2] = clip8(s2);
  }
  const out = new Uint8Array(size * size * 3);
  for (let o = 0; o < size; o++) for (let x = 0; x < size; x++) {
    let s0 = half; let s1 = half; let s2 = half;
    for (let j = 0; j < t.n[o]; j++) {
      const k = t.kk[o * t.k + j]; const p = ((t.xmin[o] - first + j) * size + x) * 3;
      s0 += tmp[p] * k; s1 += tmp[p + 1] * k; s2 += tmp[p + 2] * k;
    }
    const d = (o * size + x) * 3; out[d] = clip8(s0); out[d + 1] = clip8(s1); out[d + 2] = clip8(s2);
  }
  return { data: out, width: size, height: size, channels: 3 };
}

/** The size a frame's shorter side is resized to (aspect ratio kept), as slsdk.data.transforms.resize_shorter. */
export function shorterSize(h, w, size) {
  if (Math.min(h, w) === size) return [h, w];
  return h <= w ? [size, Math.max(size, rint(w * size / h))] : [Math.max(size, rint(h * size / w)), size];
}

export class Preprocessor {
  /** spec: the manifest's input section. */
  constructor(spec) {
    const { height, width, resize_shorter: rs, crop, mean, std, value_range: vr, colour, layout } = spec;
    if (height !== width) throw new Error(`this client feeds square crops; the manifest asks for ${height}x${width}`);
    if ((crop ?? 'center') !== 'center') throw new Error(`input.crop ${JSON.stringify(crop)} is not supported (only "center")`);
    if (vr && (vr[0] !== 0 || vr[1] !== 1)) throw new Error(`input.value_range ${JSON.stringify(vr)} is not supported (only [0, 1])`);
    if ((colour ?? 'RGB') !== 'RGB' || (layout ?? 'NTCHW') !== 'NTCHW') throw new Error(`input colour/layout ${colour}/${layout} not supported (RGB/NTCHW)`);
    if (!(rs >= height)) throw new Error(`input.resize_shorter ${rs} must be >= ${height}`);
    this.size = height; this.resizeShorter = rs;
    this.m255 = mean.map((m) => f32(f32(m) * 255)); this.s255 = std.map((s) => f32(f32(s) * 255));
  }

  get frameSize() { return 3 * this.size * this.size; }

  /** uint8 image -> float32 [3, S, S] written into out at offset (a new array without out). */
  run(img, out = null, offset = 0) {
    const [nh, nw] = shorterSize(img.height, img.width, this.resizeShorter);
    const r = resize(img, nh, nw);
    const s = this.size; const y0 = (nh - s) >> 1; const x0 = (nw - s) >> 1;
    out = out || new Float32Array(this.frameSize);
    for (let c = 0; c < 3; c++) {
      const m = this.m255[c]; const sd = this.s255[c]; const base = offset + c * s * s;
      for (let y = 0; y < s; y++) for (let x = 0; x < s; x++)
        out[base + y * s + x] = f32(f32(r.data[((y0 + y) * nw + x0 + x) * 3 + c] - m) / sd);
    }
    return out;
  }
}

// Read an slsdk bundle's manifest.json (schema: sdk/bundle/manifest.schema.json; demos/README.md "Client rules" step 1) into
// the values this client needs. Refuses what it cannot run with a message naming the field.
import { cropConfig } from './hands.js';
import { NUM_POINTS, checkLandmarkSpec } from './landmarks.js';

export const FORMAT = 'slsdk-bundle';
export const READABLE_FORMAT_VERSIONS = [1, 2];
export const TARGETS = ['onnx', 'ort']; // what ONNX Runtime Web can load

export class BundleError extends Error {}

export function parseManifest(m, source = 'manifest.json') {
  const bad = (msg) => { throw new BundleError(`${source}: ${msg}`); };
  if (!m || typeof m !== 'object') bad('not a JSON object');
  if (m.format !== FORMAT) bad(`not an slsdk bundle manifest (format=${JSON.stringify(m.format)})`);
  if (!READABLE_FORMAT_VERSIONS.includes(m.format_version)) bad(`format_version ${m.format_version} is not one this page reads (${READABLE_FORMAT_VERSIONS})`);
  if (!TARGETS.includes(m.target)) bad(`target ${JSON.stringify(m.target)}: this page runs ${TARGETS.join('/')} bundles (ONNX Runtime Web)`);
  const s = m.streaming || bad('streaming section missing');
  if (s.mode !== 'streaming') bad(`streaming.mode is ${JSON.stringify(s.mode)}: an offline (teacher) bundle has no streaming step`);
  const inp = { ...(m.input || bad('input section missing')) };
  if (inp.resize_shorter === undefined) { // format v1: the 256/224 rule every v1 bundle was made with
    const size = Math.max(inp.height, inp.width);
    inp.resize_shorter = Math.max(size, Math.round(size * 256 / 224));
    inp.crop = inp.crop ?? 'center';
  }
  const chunk = s.chunk_frames; const stride = s.output_stride;
  if (!(chunk > 0 && stride > 0 && chunk % stride === 0)) bad(`streaming.chunk_frames ${chunk} must be a positive multiple of output_stride ${stride}`);
  if (!(m.fps > 0)) bad(`fps must be positive, got ${m.fps}`);
  if (!Array.isArray(m.vocab) || !m.vocab.length) bad('vocab must be a non-empty list');
  // input.modality: "frames" (absent in older bundles), "landmarks" (the 86 points per frame, js/landmarks.js) or
  // "fusion" (the hand crop's frames and the 86 points of the same frame: two data inputs, js/fusion_stream.js)
  const modality = inp.modality ?? 'frames';
  if (!['frames', 'landmarks', 'fusion'].includes(modality)) bad(`input.modality ${JSON.stringify(modality)} is not one this page reads (frames, landmarks, fusion)`);
  const landmarks = modality === 'frames' ? null : checkLandmarkSpec(inp.landmarks, bad, modality);
  const logits = s.outputs?.[0];
  const stateInputs = new Set((s.state || []).map((st) => st.input));
  const data = (s.inputs || []).filter((t) => !stateInputs.has(t.name)); // the data inputs, in order
  const lmName = landmarks ? (landmarks.tensor ?? 'landmarks') : null;
  const lmInput = landmarks ? data.find((t) => t.name === lmName) : null;
  if (landmarks && !lmInput) bad(`streaming.inputs has no ${JSON.stringify(lmName)} tensor (input.landmarks.tensor)`);
  // the frames tensor: the first input (frames bundles), the landmarks (landmark bundles), the other data input (fusion)
  const frames = modality === 'landmarks' ? lmInput : modality === 'fusion' ? data.find((t) => t.name !== lmName) : s.inputs?.[0];
  if (modality === 'fusion' && !frames) bad('streaming.inputs: a fusion model takes a frames tensor besides the landmarks');
  if (!frames?.name || !logits?.name) bad('streaming.inputs[0] / outputs[0] need a name');
  for (const io of [...s.inputs, ...s.outputs]) {
    if ((io.dtype ?? 'float32') !== 'float32') bad(`tensor ${io.name} is ${io.dtype}; this page feeds and reads float32`);
  }
  return {
    manifest: m, target: m.target, precision: m.precision, modelFile: m.model_file,
    modelSha256: m.files?.[m.model_file]?.sha256 ?? null,
    vocab: m.vocab, blank: m.blank_id ?? 0, fps: m.fps, input: inp, size: inp.height, modality, landmarks,
    frameShape: modality === 'landmarks' ? [NUM_POINTS, 2] : [3, inp.height, inp.height],
    // the model's data inputs per model frame, in the order a chunk packs them (js/model.js splits it)
    inputs: modality === 'fusion' ? [{ name: frames.name, shape: [3, inp.height, inp.height] }, { name: lmInput.name, shape: [NUM_POINTS, 2] }]
      : [{ name: frames.name, shape: modality === 'landmarks' ? [NUM_POINTS, 2] : [3, inp.height, inp.height] }],
    resizeShorter: inp.resize_shorter, chunk, stride, frameShift: stride / m.fps,
    framesInput: frames.name, logitsOutput: logits.name,
    state: (s.state || []).map((st) => ({ input: st.input, output: st.output, shape: st.shape })),
    crop: cropConfig(m.crop || { policy: 'full' }),
  };
}

/** Fetch and parse bundleUrl + "manifest.json" (bundleUrl is the bundle directory's URL). */
export async function loadManifest(bundleUrl, fetchFn = fetch) {
  const base = bundleUrl.endsWith('/') ? bundleUrl : `${bundleUrl}/`;
  const url = `${base}manifest.json`;
  const r = await fetchFn(url);
  if (!r.ok) throw new BundleError(`${url}: HTTP ${r.status} (is this an slsdk bundle directory?)`);
  let m;
  try { m = await r.json(); } catch (e) { throw new BundleError(`${url}: invalid JSON (${e.message})`); }
  return { ...parseManifest(m, url), modelUrl: new URL(m.model_file, new URL(base, globalThis.location?.href)).href };
}

export async function sha256Hex(bytes) {
  const d = await globalThis.crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The model file's bytes, checked against the manifest's sha256. */
export async function loadModelBytes(cfg, fetchFn = fetch) {
  const r = await fetchFn(cfg.modelUrl);
  if (!r.ok) throw new BundleError(`${cfg.modelUrl}: HTTP ${r.status}`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  if (cfg.modelSha256) {
    const h = await sha256Hex(bytes);
    if (h !== cfg.modelSha256) throw new BundleError(`${cfg.modelUrl}: sha256 ${h.slice(0, 16)}... does not match the manifest's ${cfg.modelSha256.slice(0, 16)}...`);
  }
  return bytes;
}

// The page: bundle + hand model -> a video file or the camera -> live glosses over the video with the crop box,
// and what it measured. The status line says what the page is doing, then the result: the glosses recognised or
// that nothing was. A link ?bundle=URL&video=URL[&hand_model=URL][&threads=N] runs that video on load, once, as
// fast as it can; window.slsdk.done resolves to {glosses, events: [{gloss, start, end, confidence}], frames,
// source_frames, frames_with_hands, timing, ...} for tests (+ chunk_logits with &debug=1); &pause_at=N holds after
// N source frames until window.slsdk.resume(). ?camera=SECONDS runs the camera path that long instead and resolves
// done to what it saw. A landmark bundle (input.modality "landmarks") makes the 86 points per frame with the hand,
// face and pose landmarkers (&hand_model= &face_model= &pose_model=); ?landmarks=URL (a JSON landmark recording
// {fps, frames: [[x, y] x 86] per frame, pixels}, as `python -m slsdk.demos.web serve --landmarks FILE.pose`
// serves it) feeds a recording's points directly, as `slsdk run BUNDLE FILE.pose` does (&debug=1 adds the model's
// input frames and the offline and causal normalisations of the recording). A fusion bundle (input.modality
// "fusion") takes the hand crop and the 86 points of each frame: one hand pass gives both (js/fusion_stream.js;
// &debug=1 adds the points, the landmark inputs and the crop boxes); a recording alone is refused (it has no frames).
import { loadManifest, loadModelBytes } from './manifest.js';
import { Stream } from './stream.js';
import { cropConfig, landmarksInPixels } from './hands.js';
import { LandmarkStream, Pose86Extractor } from './landmark_stream.js';
import { FusionStream, fusionHandConfig } from './fusion_stream.js';
import { Pose86Normalizer, normalizePose86 } from './landmarks.js';
import { LIVE_MAX_GAP_S } from './resample.js';
import { fileFrames, startCamera } from './video.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const view = $('view'); const vctx = view.getContext('2d');
const HAND_EDGES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11], [11, 12],
  [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [0, 17], [17, 18], [18, 19], [19, 20]];

let resumeFn = null;
const hook = { done: null, progress: { frames: 0, chunks: 0 }, paused: false, finished: false, resume: () => resumeFn && resumeFn() };
window.slsdk = hook;

function setStatus(text) { $('status').textContent = text; }

function showError(e) { setStatus('Stopped by an error:'); $('error').textContent = String(e?.message || e); console.error(e); }

/** The status line for a finished run: the glosses, or that nothing was recognised `where`. */
function resultText(glosses, where) { return glosses.length ? `Recognised: ${glosses.join(' ')}` : `Nothing recognised ${where}.`; }

/** The model in a worker (ORT Web's WebAssembly backend); run(chunk) resolves to that chunk's logits. */
class WorkerModel {
  constructor() { this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }); this.calls = new Map(); this.n = 0;
    this.worker.onmessage = (e) => { const m = e.data; const c = this.calls.get(m.id); this.calls.delete(m.id);
      if (m.type === 'error') c.reject(new Error(`model worker: ${m.message}`)); else c.resolve(m); };
    this.worker.onerror = (e) => { for (const c of this.calls.values()) c.reject(new Error(`model worker: ${e.message}`)); };
  }
  call(msg, transfer = []) { const id = ++this.n; return new Promise((resolve, reject) => { this.calls.set(id, { resolve, reject }); this.worker.postMessage({ ...msg, id }, transfer); }); }
  async init(bytes, cfg, numThreads) { const { manifest, ...plain } = cfg; this.info = await this.call({ type: 'init', bytes, cfg: plain, numThreads }, [bytes.buffer]); return this; }
  run(chunk) { return this.call({ type: 'run', chunk }, [chunk.buffer]); }
  reset() { return this.call({ type: 'reset' }); }
}

/** MediaPipe HandLandmarker in VIDEO mode (tracking between frames), with the bundle's crop thresholds. */
async function handDetector(url, crop) {
  const vision = await import('../node_modules/@mediapipe/tasks-vision/vision_bundle.mjs');
  const fileset = await vision.FilesetResolver.forVisionTasks(new URL('node_modules/@mediapipe/tasks-vision/wasm', location.href).href);
  const r = await fetch(url);
  if (!r.ok) throw new Error(`hand model ${url}: HTTP ${r.status} (give ?hand_model=URL of a hand_landmarker.task)`);
  const lm = await vision.HandLandmarker.createFromOptions(fileset, {
    baseOptions: { modelAssetBuffer: new Uint8Array(await r.arrayBuffer()), delegate: 'CPU' }, runningMode: 'VIDEO',
    numHands: crop.num_hands, minHandDetectionConfidence: crop.min_detection_confidence,
    minHandPresenceConfidence: crop.min_presence_confidence, minTrackingConfidence: crop.min_tracking_confidence });
  return { async detect(img, ts) {
    const id = new ImageData(img.data instanceof Uint8ClampedArray ? img.data : new Uint8ClampedArray(img.data.buffer), img.width, img.height);
    return landmarksInPixels(lm.detectForVideo(id, ts), img.width, img.height);
  } };
}

async function taskBytes(what, url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${what} model ${url}: HTTP ${r.status} (give ?${what}_model=URL of a ${what}_landmarker.task)`);
  return new Uint8Array(await r.arrayBuffer());
}

/** A landmark or fusion bundle's MediaPipe Tasks: hand, face and pose landmarkers (Pose86Extractor); hand: the
 * hand landmarker's settings. */
async function landmarkExtractor(urls, hand) {
  const vision = await import('../node_modules/@mediapipe/tasks-vision/vision_bundle.mjs');
  const fileset = await vision.FilesetResolver.forVisionTasks(new URL('node_modules/@mediapipe/tasks-vision/wasm', location.href).href);
  const models = {};
  for (const what of ['hand', 'face', 'pose']) {
    setStatus(`Loading the ${what} model ${urls[what]} ...`);
    models[what] = await taskBytes(what, new URL(urls[what], location.href).href);
  }
  return Pose86Extractor.create(vision, fileset, models, hand);
}

async function setup(bundleUrl, handUrl, needLandmarkers = true) {
  setStatus(`Loading the bundle ${bundleUrl} ...`);
  const cfg = await loadManifest(new URL(bundleUrl, location.href).href);
  const bytes = await loadModelBytes(cfg);
  const model = await new WorkerModel().init(bytes, cfg, Number(params.get('threads') || 0));
  if (cfg.modality !== 'frames') { // landmarks, or fusion: its one hand pass crops with the bundle's settings
    const urls = { hand: handUrl, face: $('face_model').value, pose: $('pose_model').value };
    const hand = cfg.modality === 'fusion' ? fusionHandConfig(cfg) : cropConfig({ policy: 'full' });
    return { cfg, model, detector: null, extractor: needLandmarkers ? await landmarkExtractor(urls, hand) : null };
  }
  if (cfg.crop.policy === 'hands') setStatus(`Loading the hand model ${handUrl} ...`);
  const detector = cfg.crop.policy === 'hands' ? await handDetector(new URL(handUrl, location.href).href, cfg.crop) : null;
  return { cfg, model, detector };
}

const PART_COLOURS = ['#f00', '#0af', '#f0f', '#ff0'];

/** The 86 points of a landmark bundle's frame over the video, one colour per part. */
function drawPoints(points) {
  if (!points) return;
  const t = Math.max(2, Math.round(Math.min(view.width, view.height) / 200));
  [[0, 21], [21, 42], [42, 61], [61, 86]].forEach(([a, b], j) => {
    vctx.fillStyle = PART_COLOURS[j];
    for (let i = a; i < b; i++) if (points[2 * i] || points[2 * i + 1]) vctx.fillRect(points[2 * i] - t, points[2 * i + 1] - t, 2 * t, 2 * t);
  });
}

function drawFrame(img, crop, text) {
  if (view.width !== img.width || view.height !== img.height) {
    view.width = img.width; view.height = img.height;
    view.style.width = `${Math.max(img.width, 480)}px`; // small videos are shown enlarged
  }
  const data = img.data instanceof Uint8ClampedArray ? img.data : new Uint8ClampedArray(img.data.buffer);
  vctx.putImageData(new ImageData(data, img.width, img.height), 0, 0);
  const t = Math.max(2, Math.round(Math.min(img.width, img.height) / 150));
  if (crop) {
    for (const lm of crop.landmarks || []) {
      vctx.strokeStyle = '#ff0'; vctx.lineWidth = t / 2; vctx.beginPath();
      for (const [a, b] of HAND_EDGES) { vctx.moveTo(lm[a][0], lm[a][1]); vctx.lineTo(lm[b][0], lm[b][1]); }
      vctx.stroke(); vctx.fillStyle = '#f00';
      for (const p of lm) vctx.fillRect(p[0] - t, p[1] - t, 2 * t, 2 * t);
    }
    const [x0, y0, x1, y1] = crop.box;
    vctx.strokeStyle = crop.status === 'hands' ? '#0f0' : '#f80'; vctx.lineWidth = t;
    vctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
  $('glosses').textContent = text;
}

function statsText(s, st, wall, model) {
  const fps = s.stats.frames && wall > 0 ? (st.sourceFrames / (wall / 1000)) : 0;
  const ms = s.chunkMs.length ? s.chunkMs.reduce((a, b) => a + b, 0) / s.chunkMs.length : 0;
  const f = s.stats.found;
  const hands = s.policy === 'hands' ? `${s.stats.frames_with_hands} of ${s.stats.frames} frames` : f
    ? `${s.stats.frames_with_hands} of ${s.stats.frames} frames (parts found: right hand ${f.right_hand}, left hand ${f.left_hand}, lips ${f.lips}, body ${f.body})`
      + (s.policy === 'fusion' ? (s.crops ? '; the hand crop from the same hand pass' : '; whole frames (crop off)') : '') : 'crop off';
  return `frames/s ${fps.toFixed(1)} (${st.sourceFrames} source frames, ${s.frameIndex} model frames at ${s.cfg.fps} fps)\n`
    + `ms per chunk ${ms.toFixed(1)} (${s.stats.chunks} chunks of ${s.cfg.chunk} frames, ORT Web wasm in a worker, ${model.info?.threads ?? '?'} thread(s))\n`
    + `hands found ${hands}`;
}

/** A new stream for the bundle: frames (Stream), landmarks (LandmarkStream) or both (FusionStream); a landmark or
 * fusion stream of a file looks ahead, of a camera not. */
function newStream(ctx, { debug = false, maxGap = null, live = false, onCrop = null, onLandmarks = null } = {}) {
  const opts = { extractor: ctx.extractor, lookAhead: !live, maxGap, debug, onLandmarks };
  if (ctx.cfg.modality === 'landmarks') return new LandmarkStream(ctx.cfg, ctx.model, opts);
  if (ctx.cfg.modality === 'fusion') return new FusionStream(ctx.cfg, ctx.model, { ...opts, onCrop });
  return new Stream(ctx.cfg, ctx.model, { detector: ctx.detector, debug, maxGap, onCrop });
}

/** Run a whole video Blob through a new stream, showing progress and the result; returns what window.slsdk.done
 * resolves to. */
async function runFile(blob, name, ctx, debug, pauseAt) {
  const { model } = ctx;
  await model.reset();
  setStatus(`Recognising ${name} ...`);
  let lastCrop = null; let lastPoints = null;
  const s = newStream(ctx, { debug, onCrop: (img, res) => { lastCrop = res; }, onLandmarks: (img, ex) => { lastPoints = ex.points; } });
  const st = { sourceFrames: 0 }; const t0 = performance.now();
  st.decodeMs = 0; let tw = performance.now();
  for await (const { img, t } of fileFrames(blob, name)) {
    st.decodeMs += performance.now() - tw;
    await s.acceptFrame(img, t);
    st.sourceFrames += 1; hook.progress = { frames: st.sourceFrames, chunks: s.stats.chunks };
    drawFrame(img, s.policy === 'hands' || s.crops ? lastCrop : null, s.result().glosses.join(' ')); drawPoints(lastPoints);
    if (st.sourceFrames % 5 === 0) {
      setStatus(`Recognising ${name} ... ${st.sourceFrames} frames`);
      $('stats').textContent = statsText(s, st, performance.now() - t0, model);
    }
    if (pauseAt && st.sourceFrames === pauseAt) {
      await s.drain();
      drawFrame(img, s.policy === 'hands' || s.crops ? lastCrop : null, s.result().glosses.join(' '));
      $('stats').textContent = statsText(s, st, performance.now() - t0, model);
      hook.paused = true; await new Promise((r) => { resumeFn = r; }); hook.paused = false;
    }
    tw = performance.now();
  }
  if (!st.sourceFrames) throw new Error(`${name}: no frames decoded`);
  const res = await s.finish();
  const wall = performance.now() - t0;
  $('glosses').textContent = res.glosses.join(' ');
  $('stats').textContent = statsText(s, st, wall, model);
  setStatus(resultText(res.glosses, 'in this video'));
  const out = { glosses: res.glosses, events: res.events.map(({ gloss, start, end, confidence }) => ({ gloss, start, end, confidence })),
    frames: s.frameIndex, source_frames: st.sourceFrames, frames_with_hands: s.stats.frames_with_hands,
    crop: { policy: s.policy, ...s.stats }, resample: s.resampler.stats(),
    timing: { wall_ms: wall, frames_per_s: st.sourceFrames / (wall / 1000), ms_per_chunk: s.chunkMs.reduce((a, b) => a + b, 0) / (s.chunkMs.length || 1),
      chunk_ms: s.chunkMs, detect_ms: s.detectMs, detect_ms_per_detection: s.stats.detect_ms / (s.stats.detections || 1), decode_wait_ms: st.decodeMs,
      chunks: s.stats.chunks, threads: model.info?.threads, model_warmup_ms: model.info?.warmup_ms, cross_origin_isolated: crossOriginIsolated } };
  if (s.stats.found) out.landmarks = { found: s.stats.found, frames: s.stats.frames, ms: ctx.extractor.ms };
  if (debug) {
    out.chunk_logits = s.chunkLogits;
    if (s.stats.found) { out.points = s.points; out.inputs = s.inputs; }
    if (s.policy === 'fusion') out.boxes = s.boxes;
  }
  return out;
}

/** Refuse a landmark recording for a bundle that takes video frames (frames or fusion), saying what to give it. */
function checkRecordingBundle(cfg, name) {
  if (cfg.modality === 'fusion') {
    throw new Error(`${name}: a landmark recording, but the bundle is a fusion bundle (input.modality fusion): it takes `
      + 'the video frames as well as their landmarks, and a recording has no frames; give it the video (?video=URL)');
  }
  if (cfg.modality !== 'landmarks') throw new Error(`${name}: a landmark recording, but the bundle takes video frames (input.modality ${cfg.modality})`);
}

/** A landmark recording ({fps, frames}) fed directly to a landmark bundle (no landmarkers), as `slsdk run BUNDLE
 * FILE.pose` does; resolves to what window.slsdk.done resolves to. */
async function runRecording(rec, name, ctx, debug) {
  checkRecordingBundle(ctx.cfg, name);
  if (!Array.isArray(rec?.frames) || !(rec.fps > 0)) throw new Error(`${name}: not a landmark recording ({fps, frames})`);
  const frames = rec.frames.map((f, i) => {
    const x = Float32Array.from(f.flat());
    if (x.length !== 172) throw new Error(`${name}: frame ${i} has ${x.length / 2} points, the bundle takes 86`);
    return x;
  });
  await ctx.model.reset();
  setStatus(`Recognising ${name} ...`);
  const s = newStream(ctx, { debug });
  const t0 = performance.now();
  const res = await s.acceptRecording(frames, rec.fps);
  const wall = performance.now() - t0;
  $('glosses').textContent = res.glosses.join(' ');
  setStatus(resultText(res.glosses, 'in this recording'));
  const out = { glosses: res.glosses, tokens: res.tokens, events: res.events.map(({ gloss, start, end, confidence }) => ({ gloss, start, end, confidence })),
    frames: s.frameIndex, source_frames: frames.length, timing: { wall_ms: wall, chunks: s.stats.chunks, ms_per_chunk: s.chunkMs.reduce((a, b) => a + b, 0) / (s.chunkMs.length || 1) } };
  if (debug) {
    out.chunk_logits = s.chunkLogits; out.inputs = s.inputs;
    out.offline = normalizePose86(frames).map((x) => Array.from(x));
    const c = new Pose86Normalizer(); out.causal = frames.map((x) => Array.from(c.push(x)));
  }
  return out;
}

/** The camera until stop (or `seconds`): a live line, a new line at each endpoint. Resolves to what it saw. */
async function runCamera(ctx, seconds = 0) {
  await ctx.model.reset();
  let lastCrop = null; let lastPoints = null; const history = [];
  const s = newStream(ctx, { maxGap: LIVE_MAX_GAP_S, live: true, onCrop: (img, res) => { lastCrop = res; }, onLandmarks: (img, ex) => { lastPoints = ex.points; } });
  const st = { sourceFrames: 0 }; const t0 = performance.now();
  setStatus('Starting the camera ...');
  const cam = await startCamera($('camera'), async (img, t) => {
    await s.acceptFrame(img, t); st.sourceFrames += 1; hook.progress = { frames: st.sourceFrames, chunks: s.stats.chunks };
    const r = s.result();
    if (s.decoder.isEndpoint()) { // a pause after glosses, a long silence or a too-long utterance: a new line
      if (r.glosses.length) { history.push(r.glosses.join(' ')); $('history').textContent = history.slice(-5).join('\n'); }
      s.decoder.reset();
    }
    drawFrame(img, s.policy === 'hands' || s.crops ? lastCrop : null, s.result().glosses.join(' ')); drawPoints(lastPoints);
    $('stats').textContent = `${statsText(s, st, performance.now() - t0, ctx.model)}\ncamera frames dropped while busy ${cam.dropped}`;
  });
  setStatus('Recognising the camera (stop ends it) ...');
  const stopped = new Promise((resolve) => {
    const stop = async () => {
      if (!cam.running) return; cam.stop(); $('stop_btn').disabled = true;
      while (cam.busy) await new Promise((r) => setTimeout(r, 10)); // the frame in flight
      const r = await s.finish(); const wall = performance.now() - t0;
      if (r.glosses.length) history.push(r.glosses.join(' '));
      $('glosses').textContent = r.glosses.join(' '); $('history').textContent = history.slice(-5).join('\n');
      setStatus(resultText(history, 'from the camera'));
      resolve({ glosses: r.glosses, sentences: history, frames: s.frameIndex, source_frames: st.sourceFrames,
        frames_with_hands: s.stats.frames_with_hands, camera_dropped: cam.dropped, crop: { policy: s.policy, ...s.stats },
        resample: s.resampler.stats(), timing: { wall_ms: wall, frames_per_s: st.sourceFrames / (wall / 1000) } });
    };
    $('stop_btn').disabled = false; $('stop_btn').onclick = stop;
    if (seconds > 0) setTimeout(stop, seconds * 1000);
  });
  return stopped;
}

async function main() {
  if (params.has('bundle')) $('bundle').value = params.get('bundle');
  for (const what of ['hand_model', 'face_model', 'pose_model']) if (params.has(what)) $(what).value = params.get(what);
  let ctx = null;
  const getCtx = async (needLandmarkers = true) => {
    if (ctx && needLandmarkers && ctx.cfg.modality !== 'frames' && !ctx.extractor) ctx = null;
    ctx = ctx || await setup($('bundle').value, $('hand_model').value, needLandmarkers); return ctx;
  };
  $('bundle').onchange = $('hand_model').onchange = $('face_model').onchange = $('pose_model').onchange = () => { ctx = null; };
  $('file').onchange = async (e) => {
    $('error').textContent = '';
    try { const f = e.target.files[0]; if (f) await runFile(f, f.name, await getCtx(), false, 0); } catch (err) { showError(err); }
  };
  $('camera_btn').onclick = async () => { $('error').textContent = ''; try { await runCamera(await getCtx()); } catch (err) { showError(err); } };
  if (params.has('camera')) { // the camera path for SECONDS (tests: Chromium can play a file as its camera)
    hook.done = (async () => runCamera(await getCtx(), Number(params.get('camera')) || 5))();
    hook.done.then(() => { hook.finished = true; }, (e) => { hook.finished = true; showError(e); });
  } else if (params.has('landmarks')) { // a landmark recording fed directly to a landmark bundle
    const url = new URL(params.get('landmarks'), location.href).href;
    hook.done = (async () => {
      const c = await getCtx(false);
      checkRecordingBundle(c.cfg, params.get('landmarks')); // before fetching it: a bundle that takes frames
      setStatus(`Loading the landmark recording ${params.get('landmarks')} ...`);
      const r = await fetch(url);
      if (!r.ok) throw new Error(`landmark recording ${url}: HTTP ${r.status}`);
      return runRecording(await r.json(), params.get('landmarks'), c, params.get('debug') === '1');
    })();
    hook.done.then(() => { hook.finished = true; }, (e) => { hook.finished = true; showError(e); });
  } else if (params.has('video')) { // a link to a video: run it on load
    const url = new URL(params.get('video'), location.href).href;
    hook.done = (async () => {
      const c = await getCtx();
      setStatus(`Loading the video ${params.get('video')} ...`);
      const r = await fetch(url);
      if (!r.ok) throw new Error(`video ${url}: HTTP ${r.status}`);
      return runFile(await r.blob(), params.get('video'), c, params.get('debug') === '1', Number(params.get('pause_at') || 0));
    })();
    hook.done.then(() => { hook.finished = true; }, (e) => { hook.finished = true; showError(e); });
  }
}
main().catch(showError);

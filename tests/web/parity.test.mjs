// The page's JavaScript against the Python runtime on the same frames (node --test; tests/test_web.py writes the
// cases with the Python runtime and runs this with SLSDK_WEB_CASES=DIR): resampling, hand box rule + smoothing +
// fallback (on the landmarks MediaPipe gave Python), preprocessing, fixed chunks with state carry through
// ONNX Runtime Web (WebAssembly, in Node), greedy CTC and the endpoint rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.join(here, '..', '..', 'demos', 'web');
const nodeModules = process.env.SLSDK_WEB_NODE_MODULES || path.join(web, 'node_modules');
const casesDir = process.env.SLSDK_WEB_CASES;
const skip = !casesDir ? 'SLSDK_WEB_CASES is not set: tests/test_web.py writes the Python cases and runs this' : false;
const js = (name) => import(pathToFileURL(path.join(web, 'js', name)).href);

function readCase(name) {
  const dir = path.join(casesDir, name);
  return { dir, c: JSON.parse(fs.readFileSync(path.join(dir, 'case.json'), 'utf8')) };
}

async function runCase(name) {
  const ort = await import(pathToFileURL(path.join(nodeModules, 'onnxruntime-web', 'dist', 'ort.node.min.mjs')).href);
  const { parseManifest } = await js('manifest.js');
  const { ChunkModel } = await js('model.js');
  const { Stream } = await js('stream.js');
  const { dir, c } = readCase(name);
  const cfg = parseManifest(JSON.parse(fs.readFileSync(path.join(c.bundle, 'manifest.json'), 'utf8')));
  const model = await ChunkModel.create(ort, fs.readFileSync(path.join(c.bundle, cfg.modelFile)), cfg);
  const inputs = [];
  const spy = { run: (chunk) => { inputs.push(Float32Array.from(chunk)); return model.run(chunk); } };
  const calls = [];
  const detector = c.detections && { detect: async (img, ts) => {
    const d = c.detections[calls.length]; calls.push(ts);
    assert.ok(d, `more hand detections asked for (${calls.length}) than Python made (${c.detections.length})`);
    assert.equal(ts, d.ts, `detection ${calls.length - 1}: timestamp ${ts} ms, Python used ${d.ts} ms`);
    return d.hands;
  } };
  const crops = [];
  const s = new Stream(cfg, spy, { detector, debug: true, onCrop: (img, res) => crops.push(res) });
  const [n, h, w] = c.shape; const frames = fs.readFileSync(path.join(dir, 'frames.bin'));
  for (let i = 0; i < n; i++) {
    const img = { data: frames.subarray(i * h * w * 3, (i + 1) * h * w * 3), width: w, height: h, channels: 3 };
    await s.acceptFrame(img, c.timestamps[i]);
  }
  const res = await s.finish();
  const pyInputs = new Float32Array(fs.readFileSync(path.join(dir, 'inputs.bin')).buffer.slice(0));
  return { c, s, res, inputs, pyInputs, crops, calls };
}

function checkAgainstPython({ c, s, res, inputs, pyInputs }) {
  const e = c.expected;
  assert.equal(s.frameIndex, e.frames, 'model frames after resampling');
  assert.equal(inputs.length, e.chunk_logits.length, 'chunks run');
  // preprocessing: the chunk tensors the model saw
  let maxIn = 0; let off = 0; let differ = 0;
  for (const x of inputs) for (let i = 0; i < x.length; i++, off++) { const d = Math.abs(x[i] - pyInputs[off]); if (d > 0) differ++; maxIn = Math.max(maxIn, d); }
  assert.equal(off, pyInputs.length, 'chunk input size');
  assert.ok(maxIn <= e.input_tolerance, `chunk inputs differ from Python's by up to ${maxIn} (${differ} values)`);
  // state carry + model: logits per chunk within 1e-4 (fp32)
  let maxLp = 0;
  s.chunkLogits.forEach((lp, k) => {
    assert.equal(lp.length, e.chunk_logits[k].length, `chunk ${k}: output steps`);
    lp.forEach((v, i) => { maxLp = Math.max(maxLp, Math.abs(v - e.chunk_logits[k][i])); });
  });
  assert.ok(maxLp <= e.logit_tolerance, `logits differ from Python's by up to ${maxLp} (tolerance ${e.logit_tolerance})`);
  // decoder: identical tokens, same event times
  assert.deepEqual(res.tokens, e.tokens);
  assert.deepEqual(res.glosses, e.glosses);
  res.events.forEach((ev, i) => {
    assert.ok(Math.abs(ev.start - e.events[i].start) < 1e-6 && Math.abs(ev.end - e.events[i].end) < 1e-6, `event ${i} times`);
    assert.ok(Math.abs(ev.confidence - e.events[i].confidence) < 1e-4, `event ${i} confidence`);
  });
  return { maxIn, maxLp, differ };
}

test('synthetic clip, crop off: resampling, preprocessing, chunks with state, greedy CTC equal Python', { skip }, async () => {
  const r = await runCase('full');
  const got = checkAgainstPython(r);
  assert.ok(r.res.tokens.length >= 2, 'the reference should emit tokens for this to mean anything');
  console.log(`full: max |input diff| ${got.maxIn} (${got.differ} values), max |logit diff| ${got.maxLp}`);
});

test('int8 bundle (QDQ), crop off: same tokens as Python, logits within the case tolerance', { skip }, async () => {
  const r = await runCase('int8');
  const got = checkAgainstPython(r);
  console.log(`int8: max |input diff| ${got.maxIn}, max |logit diff| ${got.maxLp}`);
});

test('real clip, crop hands: box rule, smoothing, hold and fallback on the same landmarks equal Python', { skip }, async () => {
  const r = await runCase('hands');
  const e = r.c.expected;
  assert.equal(r.calls.length, r.c.detections.length, 'hand detections made');
  assert.deepEqual(r.crops.map((x) => x.box), e.boxes, 'crop boxes');
  assert.deepEqual(r.crops.map((x) => x.status), e.statuses, 'crop statuses (hands / held / fallback)');
  assert.equal(r.s.stats.frames_with_hands, e.frames_with_hands);
  assert.ok(new Set(e.statuses).size >= 2, 'the clip should exercise more than one box status');
  const got = checkAgainstPython(r);
  console.log(`hands: max |input diff| ${got.maxIn}, max |logit diff| ${got.maxLp}, statuses ${[...new Set(e.statuses)]}`);
});

test('resampler counts, endpoint rule and crop defaults equal Python', { skip }, async () => {
  const { FrameResampler } = await js('resample.js');
  const { CROP_DEFAULTS } = await js('hands.js');
  const { GreedyStream } = await js('decoder.js');
  const u = JSON.parse(fs.readFileSync(path.join(casesDir, 'units.json'), 'utf8'));
  assert.deepEqual(CROP_DEFAULTS, u.crop_defaults, 'js/hands.js CROP_DEFAULTS must equal slsdk.runtime.crop.CropConfig()');
  for (const [k, r] of u.resample.entries()) {
    const rs = new FrameResampler(r.fps, r.max_gap);
    const counts = r.times.map((t) => rs.push(t)); counts.push(rs.finish());
    assert.deepEqual(counts, r.counts, `resample case ${k} (fps ${r.fps}, max_gap ${r.max_gap})`);
  }
  for (const [k, d] of u.decode.entries()) {
    const g = new GreedyStream({ frameShift: d.frame_shift });
    const ends = []; const V = d.vocab;
    for (let t = 0; t < d.steps; t++) {
      g.accept(Float32Array.from(d.log_probs.slice(t * V, (t + 1) * V)), V);
      ends.push(g.isEndpoint());
      if (d.reset_at_endpoint && ends[t]) g.reset();
    }
    assert.deepEqual(ends, d.endpoints, `decode case ${k}: endpoint per step`);
    assert.deepEqual(g.result().tokens, d.tokens, `decode case ${k}: tokens`);
  }
});

test('a manifest the page cannot run is refused, naming the field', { skip }, async () => {
  const { parseManifest, BundleError } = await js('manifest.js');
  const { c } = readCase('full');
  const good = JSON.parse(fs.readFileSync(path.join(c.bundle, 'manifest.json'), 'utf8'));
  assert.equal(parseManifest(good).chunk, good.streaming.chunk_frames);
  const bad = [
    [{ format: 'other' }, /format/], [{ format_version: 99 }, /format_version 99/], [{ target: 'coreml' }, /target "coreml"/],
    [{ streaming: { ...good.streaming, mode: 'offline' } }, /offline/],
    [{ streaming: { ...good.streaming, chunk_frames: 6 } }, /chunk_frames 6/],
    [{ input: { ...good.input, crop: 'top' } }, /input\.crop/], [{ input: { ...good.input, value_range: [0, 255] } }, /value_range/],
    [{ crop: { policy: 'hands', margins: 2 } }, /unknown crop keys.*margins/],
  ];
  for (const [patch, msg] of bad) {
    const m = { ...good, ...patch };
    let err = null;
    try {
      const cfg = parseManifest(m, 'x/manifest.json');
      const { Preprocessor } = await js('preprocess.js');
      new Preprocessor(cfg.input); // input checks happen where the input is used
    } catch (e) { err = e; }
    assert.ok(err, `accepted ${JSON.stringify(patch)}`);
    assert.match(err.message, msg);
  }
  assert.ok(BundleError);
});

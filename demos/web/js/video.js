// Frames with their presentation times: a video file (mediabunny demuxes mp4/webm/mov/mkv, WebCodecs decodes:
// every frame, in order, as fast as it can) or the camera (getUserMedia, one frame per requestVideoFrameCallback,
// dropped while the pipeline is busy). Frames are {data: RGBA bytes, width, height, channels: 4}.
import { Input, BlobSource, ALL_FORMATS, VideoSampleSink } from '../node_modules/mediabunny/dist/bundles/mediabunny.min.mjs';

async function toRGBA(frame, canvas) {
  const { width, height } = frame.visibleRect;
  const data = new Uint8ClampedArray(width * height * 4);
  try {
    await frame.copyTo(data, { format: 'RGBA', colorSpace: 'srgb' });
  } catch (e) { // an older browser without copyTo format conversion: draw it
    canvas.width = width; canvas.height = height;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(frame, 0, 0);
    data.set(ctx.getImageData(0, 0, width, height).data);
  }
  return { data, width, height, channels: 4 };
}

/** Yield {img, t} for every frame of a video Blob/File, t in seconds from the first frame. */
export async function* fileFrames(blob, name = 'video') {
  const input = new Input({ source: new BlobSource(blob), formats: ALL_FORMATS });
  const track = await input.getPrimaryVideoTrack();
  if (!track) throw new Error(`${name}: no video track`);
  if (!(await track.canDecode())) throw new Error(`${name}: this browser cannot decode its ${track.codec} video (try VP8/VP9 WebM or H.264 MP4)`);
  const sink = new VideoSampleSink(track);
  const canvas = new OffscreenCanvas(1, 1);
  let t0 = null;
  for await (const sample of sink.samples()) {
    const frame = sample.toVideoFrame();
    try {
      const img = await toRGBA(frame, canvas);
      if (t0 === null) t0 = sample.timestamp;
      yield { img, t: sample.timestamp - t0 };
    } finally { frame.close(); sample.close(); }
  }
}

/** The camera: calls onFrame(img, t) for each frame the pipeline is free for; returns {stop(), dropped, taken}. */
export async function startCamera(video, onFrame) {
  const media = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  video.srcObject = media; video.muted = true; await video.play();
  const canvas = new OffscreenCanvas(1, 1); const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const cam = { dropped: 0, taken: 0, running: true, busy: false };
  let first = null;
  const tick = async (now, meta) => {
    if (!cam.running) return;
    first ??= meta.presentedFrames - 1;
    // frames the camera showed that the pipeline was too busy for (the resampler cuts the gaps they leave)
    cam.dropped = Math.max(0, meta.presentedFrames - first - cam.taken - (cam.busy ? 0 : 1));
    if (!cam.busy) {
      cam.busy = true; cam.taken += 1;
      const w = video.videoWidth; const h = video.videoHeight;
      canvas.width = w; canvas.height = h; ctx.drawImage(video, 0, 0, w, h);
      const img = { data: ctx.getImageData(0, 0, w, h).data, width: w, height: h, channels: 4 };
      Promise.resolve(onFrame(img, meta.mediaTime)).finally(() => { cam.busy = false; });
    }
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
  cam.stop = () => { cam.running = false; media.getTracks().forEach((t) => t.stop()); };
  return cam;
}

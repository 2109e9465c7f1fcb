package com.example.slsdk

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import android.content.res.AssetManager
import android.graphics.Bitmap
import android.graphics.Rect
import android.util.Log
import java.nio.FloatBuffer

// The shared client rules this file implements: demos/README.md, "Client rules", steps 2 and 5 (frame rate, fixed chunks with state carry);
// the web demo (demos/web/js/) is tested equal to the Python runtime on the same rules.

/**
 * Keeps frames at (at most) the manifest's fps by their timestamps: drops early frames and never bursts after
 * a stall (the iOS sample does the same). The Python runtime resamples by nearest presentation time, which also
 * repeats frames of a camera slower than the model; this gate only drops, so keep the camera at >= fps.
 */
class FrameRateGate(fps: Double, tolerance: Double = 0.25) {
    private val period = 1.0 / fps
    private val tolerance = tolerance * period
    private var next = Double.NEGATIVE_INFINITY

    fun keep(t: Double): Boolean {
        if (t < next - tolerance) return false
        next = if (t - next > period) t + period else next + period
        return true
    }
}

/**
 * Streaming sign recognition with an slsdk ONNX Runtime bundle (target "onnx" or "ort"), the Kotlin twin of
 * `slsdk.Recognizer`: frames are preprocessed as the manifest says, run through the model in chunks of
 * `streaming.chunk_frames` carrying the `streaming.state` tensors from one call to the next, and the log-probs
 * are decoded with streaming greedy CTC. Use it from one thread (the camera analyzer's executor).
 */
class SignRecognizer(val manifest: Manifest, model: ByteArray, threads: Int = 2) : AutoCloseable {
    companion object {
        private const val TAG = "slsdk"

        /** Loads `<dir>/manifest.json` and the model file it names from the app's assets. */
        fun fromAssets(assets: AssetManager, dir: String = "bundle", threads: Int = 2): SignRecognizer {
            val manifest = Manifest.parse(assets.open("$dir/manifest.json").bufferedReader().use { it.readText() })
            val model = assets.open("$dir/${manifest.modelFile}").use { it.readBytes() }
            return SignRecognizer(manifest, model, threads)
        }
    }

    private val streaming = manifest.streaming
    private val framesInput = streaming.inputs[0]        // [1, chunk, 3, S, S]
    private val logProbsOutput = streaming.outputs[0]    // [1, chunk / stride, vocab]
    private val chunk = streaming.chunkFrames
    private val outputStride = streaming.outputStride
    private val preprocessor = FramePreprocessor(manifest.input)
    private val decoder = CtcGreedyDecoder(manifest.blankId, outputStride / manifest.fps)
    private val gate = FrameRateGate(manifest.fps)
    private val pending = FloatArray(chunk * preprocessor.floatsPerFrame)  // the chunk being filled
    private var pendingFrames = 0
    private var state: Map<String, FloatArray> = zeroState()            // keyed by the state's input name
    private val env = OrtEnvironment.getEnvironment()
    private val session: OrtSession

    init {
        require(manifest.target == "onnx" || manifest.target == "ort") {
            "target ${manifest.target}: this sample runs ONNX Runtime bundles (see the README for ExecuTorch)"
        }
        val notFloat32 = (streaming.inputs + streaming.outputs).filter { it.dtype != "float32" }.map { it.name + " " + it.dtype }
        require(notFloat32.isEmpty()) { "this sample feeds and reads float32 tensors; the manifest has $notFloat32" }
        val options = OrtSession.SessionOptions().apply { setIntraOpNumThreads(threads) }
        session = env.createSession(model, options)
        val wanted = listOf(framesInput.name) + streaming.state.map { it.input }
        require(session.inputNames.containsAll(wanted)) {
            "model inputs ${session.inputNames} differ from the manifest's $wanted"
        }
        if (manifest.crop.policy == "hands") {
            // the model was trained on hand crops: pass region boxes from a hand tracker to accept()
            Log.w(TAG, "crop policy 'hands': without a region per frame the whole frame is used")
        }
    }

    /** Feeds one upright frame with its timestamp in seconds; runs the model when a chunk is full. */
    fun accept(frame: Bitmap, timeS: Double, region: Rect? = null) {
        if (!gate.keep(timeS)) return
        preprocessor.process(frame, pending, pendingFrames * preprocessor.floatsPerFrame, region)
        pendingFrames += 1
        if (pendingFrames == chunk) runChunk(chunk / outputStride)
    }

    /** End of input: runs the zero-padded last chunk, keeping only the steps real frames make. */
    fun finish() {
        if (pendingFrames > 0) runChunk((pendingFrames + outputStride - 1) / outputStride)
        decoder.finish()
    }

    /** Glosses of the current utterance. */
    val glosses: List<String> get() = decoder.tokens.map { manifest.vocab[it] }
    val text: String get() = glosses.joinToString(" ")
    val events: List<GlossEvent> get() = decoder.events
    val isEndpoint: Boolean get() = decoder.isEndpoint

    /** Starts a new utterance (after an endpoint); the model state and time keep running, as in Python. */
    fun reset() = decoder.reset()

    /** Zero state: a new stream (another video or signer). */
    fun resetState() {
        state = zeroState()
        pendingFrames = 0
    }

    override fun close() = session.close()

    private fun zeroState() = streaming.state.associate { it.input to FloatArray(it.size) }

    private fun runChunk(steps: Int) {
        // the last chunk is zero-padded in normalised pixel space, as the SDK pads it
        pending.fill(0f, pendingFrames * preprocessor.floatsPerFrame)
        val feeds = HashMap<String, OnnxTensor>()
        try {
            feeds[framesInput.name] = OnnxTensor.createTensor(env, FloatBuffer.wrap(pending), framesInput.shape)
            for (s in streaming.state) {
                feeds[s.input] = OnnxTensor.createTensor(env, FloatBuffer.wrap(state.getValue(s.input)), s.shape)
            }
            session.run(feeds).use { out ->
                val logProbs = out.get(logProbsOutput.name).get() as OnnxTensor
                val shape = logProbs.info.shape
                val vocab = shape.last().toInt()
                decoder.accept(logProbs.floatBuffer.toArray(), minOf(steps, shape[shape.size - 2].toInt()), vocab)
                state = streaming.state.associate { it.input to (out.get(it.output).get() as OnnxTensor).floatBuffer.toArray() }
            }
        } finally {
            feeds.values.forEach { it.close() }
            pendingFrames = 0
        }
    }
}

private fun FloatBuffer.toArray() = FloatArray(remaining()).also { get(it) }

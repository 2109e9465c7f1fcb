package com.example.slsdk

import org.json.JSONArray
import org.json.JSONObject

// The shared client rules this file implements: demos/README.md, "Client rules", step 1 (read the manifest);
// the web demo (demos/web/js/) is tested equal to the Python runtime on the same rules.

// The parts of an slsdk bundle's manifest.json that an app needs to feed the model and decode its output.
// Schema: sdk/bundle/manifest.schema.json (format "slsdk-bundle", format_version 2). Each class reads its own keys in `from`,
// and tests/test_demos_samples.py checks every key against a manifest the SDK writes.

/** manifest.json (top level). */
data class Manifest(
    val format: String,
    val formatVersion: Int,
    val target: String,        // "onnx" or "ort" for this sample
    val precision: String,
    val modelKind: String,     // "student": the streaming model
    val modelFile: String,     // "model.onnx" / "model.ort"
    val vocab: List<String>,   // gloss names; index = class id
    val blankId: Int,          // CTC blank (0)
    val fps: Double,           // frame rate the model was trained on
    val input: InputSpec,
    val crop: CropSpec,
    val streaming: StreamingSpec,
) {
    companion object {
        /** Parses and checks manifest.json; throws IllegalArgumentException for bundles this sample cannot run. */
        fun from(o: JSONObject): Manifest {
            val m = Manifest(
                format = o.getString("format"),
                formatVersion = o.getInt("format_version"),
                target = o.getString("target"),
                precision = o.getString("precision"),
                modelKind = o.getString("model_kind"),
                modelFile = o.getString("model_file"),
                vocab = o.getJSONArray("vocab").strings(),
                blankId = o.getInt("blank_id"),
                fps = o.getDouble("fps"),
                input = InputSpec.from(o.getJSONObject("input")),
                crop = CropSpec.from(o.getJSONObject("crop")),
                streaming = StreamingSpec.from(o.getJSONObject("streaming")),
            )
            // v2 added input.resize_shorter / input.crop and the model file's real tensor dtypes; convert the
            // model again with this slsdk for an older bundle
            require(m.format == "slsdk-bundle" && m.formatVersion == 2) {
                "format ${m.format} v${m.formatVersion}: this app reads slsdk-bundle v2"
            }
            val s = m.streaming
            require(m.modelKind == "student" && s.mode == "streaming") {
                "${m.modelKind} / ${s.mode}: convert the streaming student"
            }
            require(s.chunkFrames % s.outputStride == 0 && s.shiftFrames == s.chunkFrames && s.lookaheadFrames == 0) {
                "chunks must be non-overlapping multiples of the output stride"
            }
            require(m.input.modality == "frames") { unsupportedModality(m.input) }
            return m
        }

        fun parse(json: String): Manifest = from(JSONObject(json))
    }
}

/** Why this sample refuses a bundle whose model does not take video frames (input.modality "landmarks" or "fusion"):
 *  it names the inputs and what the app lacks to make them. The reference that does run landmark bundles: the web
 *  page (demos/web/js/landmarks.js, landmark_stream.js) and the Python runtime (slsdk run). */
fun unsupportedModality(input: InputSpec): String {
    val lm = input.landmarks
    val points = if (lm == null) "no input.landmarks section" else
        "${lm.points}x${lm.dims} ${lm.layout} points (${lm.parts.joinToString(", ") { "${it.name} ${it.count} from ${it.source}" }}), normalised by ${lm.normalisation}, fed as tensor '${lm.tensor}'"
    val frames = if (input.modality == "fusion") " together with the video frames" else ""
    return "input.modality ${input.modality}: the model takes $points$frames. This sample feeds video frames only: " +
        "a landmark bundle needs MediaPipe Tasks' HandLandmarker, FaceLandmarker and PoseLandmarker per frame " +
        "and a Kotlin port of the ${lm?.normalisation ?: "landmark"} normalisation, which it does not have yet. " +
        "Run the bundle with the web page (demos/web) or slsdk run, or convert a frames (RGB) student for the phone."
}

/** manifest["input"]: how a camera frame becomes the model's input. */
data class InputSpec(
    val height: Int,
    val width: Int,
    val channels: Int,          // 3
    val layout: String,         // "NTCHW": [batch, time, channel, height, width]
    val colour: String,         // "RGB"
    val resizeShorter: Int,     // the frame's shorter side is resized to this many pixels (aspect kept) ...
    val crop: String,           // ... then "center": the middle height x width is cut out
    val valueRange: List<Double>, // pixels are scaled to this range first ([0, 1]) ...
    val mean: List<Double>,     // ... then normalised per channel: (x - mean) / std
    val std: List<Double>,
    val modality: String,       // "frames" (absent in older bundles); "landmarks" / "fusion" are refused (Manifest.from)
    val landmarks: LandmarkSpec?, // the landmark input of a landmark / fusion bundle (said in the refusal)
) {
    companion object {
        fun from(o: JSONObject) = InputSpec(
            height = o.getInt("height"),
            width = o.getInt("width"),
            channels = o.getInt("channels"),
            layout = o.getString("layout"),
            colour = o.getString("colour"),
            resizeShorter = o.getInt("resize_shorter"),
            crop = o.getString("crop"),
            valueRange = o.getJSONArray("value_range").doubles(),
            mean = o.getJSONArray("mean").doubles(),
            std = o.getJSONArray("std").doubles(),
            modality = o.optString("modality", "frames"),
            landmarks = o.optJSONObject("landmarks")?.let(LandmarkSpec::from),
        )
    }
}

/** manifest["input"]["landmarks"]: the per-frame landmark tensor [points, dims] of a landmark model, its layout
 *  (parts in order, each from a MediaPipe landmarker) and normalisation. Read to name them when refusing. */
data class LandmarkSpec(
    val tensor: String,         // the model input the points go to
    val layout: String,         // "pose86"
    val points: Int,            // 86
    val dims: Int,              // 2: x, y
    val normalisation: String,  // "isharah-pose86"
    val coordinates: String,    // "pixels" before normalisation
    val parts: List<LandmarkPart>,
) {
    companion object {
        fun from(o: JSONObject) = LandmarkSpec(
            tensor = o.getString("tensor"),
            layout = o.getString("layout"),
            points = o.getInt("points"),
            dims = o.getInt("dims"),
            normalisation = o.getString("normalisation"),
            coordinates = o.getString("coordinates"),
            parts = o.getJSONArray("parts").objects().map(LandmarkPart::from),
        )
    }
}

/** One part of the layout, in order: [count] points from [source]'s landmarks [indices]. */
data class LandmarkPart(val name: String, val source: String, val count: Int, val indices: List<Int>) {
    companion object {
        fun from(o: JSONObject) = LandmarkPart(
            name = o.getString("name"),
            source = o.getString("source"),
            count = o.getInt("count"),
            indices = o.getJSONArray("indices").let { a -> List(a.length()) { a.getInt(it) } },
        )
    }
}

/** manifest["crop"]: "full" (whole frame) or "hands" (a square around the hands; needs a hand tracker). */
data class CropSpec(val policy: String) {
    companion object {
        fun from(o: JSONObject) = CropSpec(policy = o.getString("policy"))
    }
}

/** manifest["streaming"]: chunking, the model's named tensors and the state carried between chunks. */
data class StreamingSpec(
    val mode: String,           // "streaming"
    val chunkFrames: Int,       // frames per model call
    val shiftFrames: Int,       // == chunkFrames (no overlap)
    val lookaheadFrames: Int,   // 0
    val outputStride: Int,      // frames per output (log-prob) step
    val inputs: List<TensorSpec>,  // inputs[0]: the frames [1, chunk, 3, H, W]; then the state inputs
    val outputs: List<TensorSpec>, // outputs[0]: log-probs [1, chunk / stride, vocab]; then the state outputs
    val state: List<StateSpec>,
) {
    companion object {
        fun from(o: JSONObject) = StreamingSpec(
            mode = o.getString("mode"),
            chunkFrames = o.getInt("chunk_frames"),
            shiftFrames = o.getInt("shift_frames"),
            lookaheadFrames = o.getInt("lookahead_frames"),
            outputStride = o.getInt("output_stride"),
            inputs = o.getJSONArray("inputs").objects().map(TensorSpec::from),
            outputs = o.getJSONArray("outputs").objects().map(TensorSpec::from),
            state = o.getJSONArray("state").objects().map(StateSpec::from),
        )
    }
}

/** One named model input or output; [dtype] is the model file's element type ("float32" for ONNX bundles). */
data class TensorSpec(val name: String, val shape: LongArray, val dtype: String) {
    companion object {
        fun from(o: JSONObject) = TensorSpec(
            name = o.getString("name"),
            shape = o.getJSONArray("shape").longs(),
            dtype = o.getString("dtype"),
        )
    }
}

/** One state tensor: fed as [input], returned as [output], zeros at the start of a stream. */
data class StateSpec(val name: String, val input: String, val output: String, val shape: LongArray, val init: String) {
    val size: Int get() = shape.fold(1L) { a, b -> a * b }.toInt()

    companion object {
        fun from(o: JSONObject) = StateSpec(
            name = o.getString("name"),
            input = o.getString("input"),
            output = o.getString("output"),
            shape = o.getJSONArray("shape").longs(),
            init = o.getString("init"),
        )
    }
}

private fun JSONArray.strings() = List(length()) { getString(it) }
private fun JSONArray.doubles() = List(length()) { getDouble(it) }
private fun JSONArray.longs() = LongArray(length()) { getLong(it) }
private fun JSONArray.objects() = List(length()) { getJSONObject(it) }

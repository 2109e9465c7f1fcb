import Foundation

// The shared client rules this file implements: demos/README.md, "Client rules", step 1 (read the manifest);
// the web demo (demos/web/js/) is tested equal to the Python runtime on the same rules.

// The parts of an slsdk bundle's manifest.json that an app needs to feed the model and decode its output.
// Schema: sdk/bundle/manifest.schema.json (format "slsdk-bundle", format_version 2). Every JSON key is spelled out in a
// CodingKeys enum, and tests/test_demos_samples.py checks each one against a manifest the SDK writes.

enum ManifestError: Error, CustomStringConvertible {
    case unsupported(String)

    var description: String {
        switch self {
        case .unsupported(let why): return "unsupported bundle: \(why)"
        }
    }
}

/// manifest.json (top level).
struct Manifest: Decodable {
    let format: String
    let formatVersion: Int
    let target: String          // "coreml" for this sample
    let precision: String
    let modelKind: String       // "student": the streaming model
    let modelFile: String       // "model.mlpackage"
    let vocab: [String]         // gloss names; index = class id
    let blankId: Int            // CTC blank (0)
    let fps: Double             // frame rate the model was trained on
    let input: InputSpec
    let crop: CropSpec
    let streaming: StreamingSpec

    enum CodingKeys: String, CodingKey {
        case format = "format"
        case formatVersion = "format_version"
        case target = "target"
        case precision = "precision"
        case modelKind = "model_kind"
        case modelFile = "model_file"
        case vocab = "vocab"
        case blankId = "blank_id"
        case fps = "fps"
        case input = "input"
        case crop = "crop"
        case streaming = "streaming"
    }

    /// Reads and checks `manifest.json`; throws for bundles this sample cannot run.
    static func load(from url: URL) throws -> Manifest {
        let m = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: url))
        guard m.format == "slsdk-bundle", m.formatVersion == 2 else {
            // v2 added input.resize_shorter / input.crop and the model file's real tensor dtypes; convert the
            // model again with this slsdk for an older bundle
            throw ManifestError.unsupported("format \(m.format) v\(m.formatVersion); this app reads slsdk-bundle v2")
        }
        guard m.modelKind == "student", m.streaming.mode == "streaming" else {
            throw ManifestError.unsupported("\(m.modelKind) / \(m.streaming.mode): convert the streaming student")
        }
        guard m.streaming.chunkFrames % m.streaming.outputStride == 0,
              m.streaming.shiftFrames == m.streaming.chunkFrames, m.streaming.lookaheadFrames == 0 else {
            throw ManifestError.unsupported("chunks must be non-overlapping multiples of the output stride")
        }
        guard m.input.inputModality == "frames" else {
            throw ManifestError.unsupported(unsupportedModality(m.input))
        }
        return m
    }
}

/// Why this sample refuses a bundle whose model does not take video frames (input.modality "landmarks" or "fusion"):
/// it names the inputs and what the app lacks to make them. The reference that does run landmark bundles: the web
/// page (demos/web/js/landmarks.js, landmark_stream.js) and the Python runtime (slsdk run).
func unsupportedModality(_ input: InputSpec) -> String {
    var points = "no input.landmarks section"
    if let lm = input.landmarks {
        let parts = lm.parts.map { "\($0.name) \($0.count) from \($0.source)" }.joined(separator: ", ")
        points = "\(lm.points)x\(lm.dims) \(lm.layout) points (\(parts)), normalised by \(lm.normalisation), fed as tensor '\(lm.tensor)'"
    }
    let frames = input.inputModality == "fusion" ? " together with the video frames" : ""
    return "input.modality \(input.inputModality): the model takes \(points)\(frames). This sample feeds video frames only: "
        + "a landmark bundle needs MediaPipe Tasks' HandLandmarker, FaceLandmarker and PoseLandmarker per frame "
        + "and a Swift port of the \(input.landmarks?.normalisation ?? "landmark") normalisation, which it does not have yet. "
        + "Run the bundle with the web page (demos/web) or slsdk run, or convert a frames (RGB) student for the phone."
}

/// manifest["input"]: how a camera frame becomes the model's input.
struct InputSpec: Decodable {
    let height: Int
    let width: Int
    let channels: Int           // 3
    let layout: String          // "NTCHW": [batch, time, channel, height, width]
    let colour: String          // "RGB"
    let resizeShorter: Int      // the frame's shorter side is resized to this many pixels (aspect kept) ...
    let crop: String            // ... then "center": the middle height x width is cut out
    let valueRange: [Double]    // pixels are scaled to this range first ([0, 1]) ...
    let mean: [Double]          // ... then normalised per channel: (x - mean) / std
    let std: [Double]
    let modality: String?       // "frames" when absent (older bundles); "landmarks" / "fusion" are refused (Manifest.load)
    let landmarks: LandmarkSpec? // the landmark input of a landmark / fusion bundle (said in the refusal)

    var inputModality: String { modality ?? "frames" }

    enum CodingKeys: String, CodingKey {
        case height = "height"
        case width = "width"
        case channels = "channels"
        case layout = "layout"
        case colour = "colour"
        case resizeShorter = "resize_shorter"
        case crop = "crop"
        case valueRange = "value_range"
        case mean = "mean"
        case std = "std"
        case modality = "modality"
        case landmarks = "landmarks"
    }
}

/// manifest["input"]["landmarks"]: the per-frame landmark tensor [points, dims] of a landmark model, its layout
/// (parts in order, each from a MediaPipe landmarker) and normalisation. Read to name them when refusing.
struct LandmarkSpec: Decodable {
    let tensor: String          // the model input the points go to
    let layout: String          // "pose86"
    let points: Int             // 86
    let dims: Int               // 2: x, y
    let normalisation: String   // "isharah-pose86"
    let coordinates: String     // "pixels" before normalisation
    let parts: [LandmarkPart]

    enum CodingKeys: String, CodingKey {
        case tensor = "tensor"
        case layout = "layout"
        case points = "points"
        case dims = "dims"
        case normalisation = "normalisation"
        case coordinates = "coordinates"
        case parts = "parts"
    }
}

/// One part of the layout, in order: `count` points from `source`'s landmarks `indices`.
struct LandmarkPart: Decodable {
    let name: String
    let source: String
    let count: Int
    let indices: [Int]

    enum CodingKeys: String, CodingKey {
        case name = "name"
        case source = "source"
        case count = "count"
        case indices = "indices"
    }
}

/// manifest["crop"]: "full" (whole frame) or "hands" (a square around the hands; needs a hand tracker).
struct CropSpec: Decodable {
    let policy: String

    enum CodingKeys: String, CodingKey {
        case policy = "policy"
    }
}

/// manifest["streaming"]: chunking, the model's named tensors and the state carried between chunks.
struct StreamingSpec: Decodable {
    let mode: String            // "streaming"
    let chunkFrames: Int        // frames per model call
    let shiftFrames: Int        // == chunkFrames (no overlap)
    let lookaheadFrames: Int    // 0
    let outputStride: Int       // frames per output (log-prob) step
    let inputs: [TensorSpec]    // inputs[0]: the frames [1, chunk, 3, H, W]; then the state inputs
    let outputs: [TensorSpec]   // outputs[0]: log-probs [1, chunk / stride, vocab]; then the state outputs
    let state: [StateSpec]

    enum CodingKeys: String, CodingKey {
        case mode = "mode"
        case chunkFrames = "chunk_frames"
        case shiftFrames = "shift_frames"
        case lookaheadFrames = "lookahead_frames"
        case outputStride = "output_stride"
        case inputs = "inputs"
        case outputs = "outputs"
        case state = "state"
    }
}

/// One named model input or output.
struct TensorSpec: Decodable {
    let name: String
    let shape: [Int]
    let dtype: String           // the model file's element type: "float32", or "float16" (outputs of fp16 packages)

    enum CodingKeys: String, CodingKey {
        case name = "name"
        case shape = "shape"
        case dtype = "dtype"
    }
}

/// One state tensor: fed as `input`, returned as `output`, zeros at the start of a stream.
struct StateSpec: Decodable {
    let name: String
    let input: String
    let output: String
    let shape: [Int]
    let initial: String         // "zeros"

    enum CodingKeys: String, CodingKey {
        case name = "name"
        case input = "input"
        case output = "output"
        case shape = "shape"
        case initial = "init"
    }
}

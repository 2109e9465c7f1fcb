import CoreGraphics
import CoreML
import CoreVideo
import Foundation

// The shared client rules this file implements: demos/README.md, "Client rules", steps 2 and 5 (frame rate, fixed chunks with state carry);
// the web demo (demos/web/js/) is tested equal to the Python runtime on the same rules.

/// Keeps frames at (at most) the manifest's fps by their timestamps: drops early frames and never bursts after
/// a stall (the Android sample does the same). The Python runtime resamples by nearest presentation time, which
/// also repeats frames of a camera slower than the model; this gate only drops, so keep the camera at >= fps.
struct FrameRateGate {
    let period: Double
    let tolerance: Double
    private var next = -Double.infinity

    init(fps: Double, tolerance: Double = 0.25) {
        period = 1.0 / fps
        self.tolerance = tolerance * period
    }

    mutating func keep(_ t: Double) -> Bool {
        if t < next - tolerance { return false }
        next = t - next > period ? t + period : next + period
        return true
    }
}

/// Streaming sign recognition with an slsdk Core ML bundle (target "coreml"), the Swift twin of
/// `slsdk.Recognizer`: frames are preprocessed as the manifest says, run through the model in chunks of
/// `streaming.chunk_frames` carrying the `streaming.state` tensors from one call to the next, and the
/// log-probs are decoded with streaming greedy CTC. Use it from one serial queue.
final class SignRecognizer {
    let manifest: Manifest
    private let model: MLModel
    private let preprocessor: FramePreprocessor
    private let decoder: CTCGreedyDecoder
    private let framesInput: TensorSpec
    private let logProbsOutput: TensorSpec
    private var elementTypes: [String: MLMultiArrayDataType] = [:]  // manifest dtype of every input and output
    private let chunk: Int
    private let outputStride: Int
    private var gate: FrameRateGate
    private var state: [String: MLMultiArray] = [:]  // keyed by the state's input name
    private var pending: [Float] = []                 // preprocessed frames of the chunk being filled
    private var pendingFrames = 0

    /// `bundleURL`: a bundle folder (manifest.json + model.mlpackage) copied into the app as a folder
    /// reference. The package is compiled on first use and the compiled model cached in Application Support.
    static func load(bundleURL: URL, computeUnits: MLComputeUnits = .all) async throws -> SignRecognizer {
        let manifest = try Manifest.load(from: bundleURL.appendingPathComponent("manifest.json"))
        guard manifest.target == "coreml" else {
            throw ManifestError.unsupported("target \(manifest.target): this sample runs Core ML bundles "
                                            + "(see the README for ExecuTorch)")
        }
        let compiled = try await compiledModel(for: bundleURL.appendingPathComponent(manifest.modelFile))
        let config = MLModelConfiguration()
        config.computeUnits = computeUnits
        return try SignRecognizer(manifest: manifest, model: MLModel(contentsOf: compiled, configuration: config))
    }

    init(manifest: Manifest, model: MLModel) throws {
        let s = manifest.streaming
        self.manifest = manifest
        self.model = model
        preprocessor = try FramePreprocessor(input: manifest.input)
        framesInput = s.inputs[0]
        logProbsOutput = s.outputs[0]
        chunk = s.chunkFrames
        outputStride = s.outputStride
        decoder = CTCGreedyDecoder(blank: manifest.blankId, frameShift: Double(s.outputStride) / manifest.fps)
        gate = FrameRateGate(fps: manifest.fps)
        let names = Set(model.modelDescription.inputDescriptionsByName.keys)
        let wanted = [framesInput.name] + s.state.map(\.input)
        guard wanted.allSatisfy({ names.contains($0) }) else {
            throw ManifestError.unsupported("model inputs \(names.sorted()) differ from the manifest's \(wanted)")
        }
        // element types as the manifest states them (an fp16 package: float32 inputs, float16 outputs), checked
        // against the compiled model so a mismatch fails here rather than as garbage glosses
        let described = model.modelDescription.inputDescriptionsByName
            .merging(model.modelDescription.outputDescriptionsByName) { a, _ in a }
        for spec in s.inputs + s.outputs {
            let type = try Self.arrayType(for: spec.dtype)
            let actual = described[spec.name]?.multiArrayConstraint?.dataType
            guard actual == type else {
                let found = actual.map { "MLMultiArrayDataType(rawValue: \($0.rawValue))" } ?? "no such array"
                throw ManifestError.unsupported("\(spec.name): the manifest says \(spec.dtype), the model has \(found)")
            }
            elementTypes[spec.name] = type
        }
        if manifest.crop.policy == "hands" {
            // the model was trained on hand crops: pass `region` boxes from a hand tracker to accept(_:time:region:)
            print("slsdk: crop policy 'hands': without a region per frame the whole frame is used")
        }
        resetState()
    }

    /// Feeds one upright camera frame with its presentation time in seconds; runs the model when a chunk is full.
    func accept(_ pixelBuffer: CVPixelBuffer, time: Double, region: CGRect? = nil) throws {
        guard gate.keep(time) else { return }
        preprocessor.append(pixelBuffer, region: region, to: &pending)
        pendingFrames += 1
        if pendingFrames == chunk { try runChunk(steps: chunk / outputStride) }
    }

    /// End of input: runs the zero-padded last chunk, keeping only the steps real frames make.
    func finish() throws {
        if pendingFrames > 0 {
            try runChunk(steps: (pendingFrames + outputStride - 1) / outputStride)
        }
        decoder.finish()
    }

    /// Glosses of the current utterance.
    var glosses: [String] { decoder.tokens.map { manifest.vocab[$0] } }
    var text: String { glosses.joined(separator: " ") }
    var events: [(gloss: String, start: Double, end: Double, confidence: Double)] {
        decoder.events.map { (manifest.vocab[$0.id], $0.start, $0.end, $0.confidence) }
    }
    var isEndpoint: Bool { decoder.isEndpoint }

    /// Starts a new utterance (after an endpoint); the model state and time keep running, as in Python.
    func reset() { decoder.reset() }

    /// Zero state: a new stream (another video or signer).
    func resetState() {
        for spec in manifest.streaming.state {
            let zeros = MLMultiArray(MLShapedArray<Float>(repeating: 0, shape: spec.shape))
            state[spec.input] = Self.converted(zeros, to: elementTypes[spec.input] ?? .float32)
        }
        pending.removeAll(keepingCapacity: true)
        pendingFrames = 0
    }

    private func runChunk(steps: Int) throws {
        // the last chunk is zero-padded in normalised pixel space, as the SDK pads it
        pending.append(contentsOf: repeatElement(0, count: (chunk - pendingFrames) * preprocessor.floatsPerFrame))
        let frames = MLMultiArray(MLShapedArray<Float>(scalars: pending, shape: framesInput.shape))
        var features: [String: Any] = [framesInput.name: Self.converted(frames, to: elementTypes[framesInput.name] ?? .float32)]
        for (name, value) in state { features[name] = value }
        let out = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: features))
        pending.removeAll(keepingCapacity: true)
        pendingFrames = 0

        // log-probs [1, chunk / stride, V] of the manifest's dtype (float16 for fp16 packages), read as Float
        guard let lp = out.featureValue(for: logProbsOutput.name)?.multiArrayValue else {
            throw ManifestError.unsupported("model has no output \(logProbsOutput.name)")
        }
        let logProbs = MLShapedArray<Float>(converting: lp)
        let vocab = logProbs.shape[logProbs.shape.count - 1]
        let scalars = logProbs.scalars
        decoder.accept((0..<min(steps, scalars.count / vocab)).map { scalars[($0 * vocab)..<(($0 + 1) * vocab)] })

        for spec in manifest.streaming.state {
            guard let next = out.featureValue(for: spec.output)?.multiArrayValue else {
                throw ManifestError.unsupported("model has no state output \(spec.output)")
            }
            // a state output (float16 in an fp16 package) goes back in as its input's dtype (float32)
            state[spec.input] = Self.converted(next, to: elementTypes[spec.input] ?? .float32)
        }
    }

    /// The Core ML element type of a manifest dtype; this sample handles "float32" and "float16".
    static func arrayType(for dtype: String) throws -> MLMultiArrayDataType {
        switch dtype {
        case "float32": return .float32
        case "float16": return .float16
        default: throw ManifestError.unsupported("tensor dtype \(dtype): this sample handles float32 and float16")
        }
    }

    /// `array` with `type` elements (a copy when it has another type).
    static func converted(_ array: MLMultiArray, to type: MLMultiArrayDataType) -> MLMultiArray {
        if array.dataType == type { return array }
        switch type {
        case .float16: return MLMultiArray(MLShapedArray<Float16>(converting: array))
        default: return MLMultiArray(MLShapedArray<Float>(converting: array))
        }
    }

    /// The compiled model, Application Support/slsdk/<name>.mlmodelc, compiled again when the package is newer.
    private static func compiledModel(for package: URL) async throws -> URL {
        let fm = FileManager.default
        let cache = try fm.url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("slsdk", isDirectory: true)
        try fm.createDirectory(at: cache, withIntermediateDirectories: true)
        let target = cache.appendingPathComponent(package.deletingPathExtension().lastPathComponent + ".mlmodelc")
        let packageDate = (try? fm.attributesOfItem(atPath: package.path)[.modificationDate] as? Date) ?? .distantPast
        if let date = try? fm.attributesOfItem(atPath: target.path)[.modificationDate] as? Date, date >= packageDate {
            return target
        }
        let compiled = try await MLModel.compileModel(at: package)
        _ = try? fm.removeItem(at: target)
        try fm.moveItem(at: compiled, to: target)
        return target
    }
}

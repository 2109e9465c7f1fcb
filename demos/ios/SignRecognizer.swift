import CoreGraphics
import CoreML
import CoreVideo
import Foundation

/// Keeps frames at (at most) the manifest's fps by their timestamps: drops early frames and never bursts after
/// a stall. The same rule as demos/webcam.py and the Android sample.
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
            let zeros = MLShapedArray<Float>(repeating: 0, shape: spec.shape)
            state[spec.input] = MLMultiArray(zeros)
        }
        pending.removeAll(keepingCapacity: true)
        pendingFrames = 0
    }

    private func runChunk(steps: Int) throws {
        // the last chunk is zero-padded in normalised pixel space, as the SDK pads it
        pending.append(contentsOf: repeatElement(0, count: (chunk - pendingFrames) * preprocessor.floatsPerFrame))
        var features: [String: Any] = [framesInput.name: MLMultiArray(MLShapedArray<Float>(scalars: pending,
                                                                                               shape: framesInput.shape))]
        for (name, value) in state { features[name] = value }
        let out = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: features))
        pending.removeAll(keepingCapacity: true)
        pendingFrames = 0

        // log-probs [1, chunk / stride, V]; Core ML fp16 bundles return Float16 arrays, converted here
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
            state[spec.input] = MLMultiArray(MLShapedArray<Float>(converting: next))  // float32, as the inputs
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

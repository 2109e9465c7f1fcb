import Foundation

// The shared client rules this file implements: demos/README.md, "Client rules", step 6 (greedy CTC + endpoint rule);
// the web demo (demos/web/js/) is tested equal to the Python runtime on the same rules.

/// One decoded gloss: vocabulary id, start/end in seconds from the start of the stream, mean posterior.
struct GlossEvent {
    let id: Int
    let start: Double
    let end: Double
    let confidence: Double
}

/// An endpoint rule as in sherpa-onnx and slsdk.decode.ctc.EndpointRule: fires when the utterance has glosses
/// (or `mustContainNonsilence` is false), the trailing blank run lasts `minTrailingSilence` seconds and the
/// utterance lasts `minUtteranceLength` seconds.
struct EndpointRule {
    let mustContainNonsilence: Bool
    let minTrailingSilence: Double
    let minUtteranceLength: Double

    func activated(containsNonsilence: Bool, trailingSilence: Double, utteranceLength: Double) -> Bool {
        let eps = 1e-9  // times are step * frameShift; compare robustly with thresholds in seconds
        return (containsNonsilence || !mustContainNonsilence)
            && trailingSilence + eps >= minTrailingSilence
            && utteranceLength + eps >= minUtteranceLength
    }
}

/// slsdk.decode.ctc.EndpointConfig's defaults: nothing signed for 2.4 s; a 1.2 s pause after glosses;
/// an utterance of 20 s.
let defaultEndpointRules = [
    EndpointRule(mustContainNonsilence: false, minTrailingSilence: 2.4, minUtteranceLength: 0.0),
    EndpointRule(mustContainNonsilence: true, minTrailingSilence: 1.2, minUtteranceLength: 0.0),
    EndpointRule(mustContainNonsilence: false, minTrailingSilence: 0.0, minUtteranceLength: 20.0),
]

/// Streaming best-path CTC decoding, step for step the Python `slsdk.decode.ctc.GreedyStream`:
/// argmax per output step (the first maximum on ties), a repeated id extends the current gloss, the blank
/// separates glosses. Decoding a stream in chunks gives exactly the glosses of decoding it whole.
final class CTCGreedyDecoder {
    let blank: Int
    let frameShift: Double  // seconds per output step: output_stride / fps
    let rules: [EndpointRule]

    private struct Run { var id: Int; var start: Int; var end: Int; var probSum: Double; var count: Int }

    private(set) var frameOffset = 0  // global output steps accepted; survives reset()
    private var utteranceStart = 0
    private var previous: Int
    private var runs: [Run] = []
    private var trailingBlanks = 0
    private(set) var isFinal = false

    init(blank: Int, frameShift: Double, rules: [EndpointRule] = defaultEndpointRules) {
        self.blank = blank
        self.frameShift = frameShift
        self.rules = rules
        self.previous = blank
    }

    /// Feeds output steps: one row of log-probabilities (length = vocabulary size) per step.
    func accept(_ rows: [ArraySlice<Float>]) {
        precondition(!isFinal, "decoder was finalized; call reset() to start a new utterance")
        for row in rows {
            var best = row.startIndex
            for j in row.indices where row[j] > row[best] { best = j }
            let id = best - row.startIndex
            if id == blank {
                trailingBlanks += 1
            } else {
                let p = exp(Double(row[best]))
                if id == previous, !runs.isEmpty {
                    runs[runs.count - 1].end = frameOffset + 1
                    runs[runs.count - 1].probSum += p
                    runs[runs.count - 1].count += 1
                } else {
                    runs.append(Run(id: id, start: frameOffset, end: frameOffset + 1, probSum: p, count: 1))
                }
                trailingBlanks = 0
            }
            previous = id
            frameOffset += 1
        }
    }

    /// Gloss ids of the current utterance (greedy decoding commits every gloss at once).
    var tokens: [Int] { runs.map(\.id) }

    var events: [GlossEvent] {
        runs.map { GlossEvent(id: $0.id, start: Double($0.start) * frameShift, end: Double($0.end) * frameShift,
                              confidence: $0.probSum / Double($0.count)) }
    }

    /// True when a rule fires: show the sentence, then call reset().
    var isEndpoint: Bool {
        let utterance = Double(frameOffset - utteranceStart) * frameShift
        let trailing = Double(trailingBlanks) * frameShift
        return rules.contains { $0.activated(containsNonsilence: !runs.isEmpty, trailingSilence: trailing,
                                             utteranceLength: utterance) }
    }

    /// No more input for this utterance (Python: finalize).
    func finish() { isFinal = true }

    /// Starts a new utterance; the global time offset is kept.
    func reset() {
        previous = blank
        runs.removeAll()
        trailingBlanks = 0
        utteranceStart = frameOffset
        isFinal = false
    }
}

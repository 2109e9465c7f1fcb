package com.example.slsdk

import kotlin.math.exp

// The shared client rules this file implements: demos/README.md, "Client rules", step 6 (greedy CTC + endpoint rule);
// the web demo (demos/web/js/) is tested equal to the Python runtime on the same rules.

/** One decoded gloss: vocabulary id, start/end in seconds from the start of the stream, mean posterior. */
data class GlossEvent(val id: Int, val start: Double, val end: Double, val confidence: Double)

/**
 * An endpoint rule as in sherpa-onnx and slsdk.decode.ctc.EndpointRule: fires when the utterance has glosses
 * (or [mustContainNonsilence] is false), the trailing blank run lasts [minTrailingSilence] seconds and the
 * utterance lasts [minUtteranceLength] seconds.
 */
data class EndpointRule(val mustContainNonsilence: Boolean, val minTrailingSilence: Double, val minUtteranceLength: Double) {
    fun activated(containsNonsilence: Boolean, trailingSilence: Double, utteranceLength: Double): Boolean {
        val eps = 1e-9  // times are step * frameShift; compare robustly with thresholds in seconds
        return (containsNonsilence || !mustContainNonsilence) &&
            trailingSilence + eps >= minTrailingSilence &&
            utteranceLength + eps >= minUtteranceLength
    }
}

/** slsdk.decode.ctc.EndpointConfig's defaults: nothing signed for 2.4 s; a 1.2 s pause after glosses; 20 s. */
val DEFAULT_ENDPOINT_RULES = listOf(
    EndpointRule(mustContainNonsilence = false, minTrailingSilence = 2.4, minUtteranceLength = 0.0),
    EndpointRule(mustContainNonsilence = true, minTrailingSilence = 1.2, minUtteranceLength = 0.0),
    EndpointRule(mustContainNonsilence = false, minTrailingSilence = 0.0, minUtteranceLength = 20.0),
)

/**
 * Streaming best-path CTC decoding, step for step the Python `slsdk.decode.ctc.GreedyStream`: argmax per output
 * step (the first maximum on ties), a repeated id extends the current gloss, the blank separates glosses.
 * Decoding a stream in chunks gives exactly the glosses of decoding it whole.
 */
class CtcGreedyDecoder(
    val blank: Int,
    val frameShift: Double,  // seconds per output step: output_stride / fps
    val rules: List<EndpointRule> = DEFAULT_ENDPOINT_RULES,
) {
    private class Run(val id: Int, val start: Int, var end: Int, var probSum: Double, var count: Int)

    var frameOffset = 0  // global output steps accepted; survives reset()
        private set
    var isFinal = false
        private set
    private var utteranceStart = 0
    private var previous = blank
    private val runs = ArrayList<Run>()
    private var trailingBlanks = 0

    /** Feeds [steps] rows of log-probabilities, row-major in [logProbs] (each row [vocab] long). */
    fun accept(logProbs: FloatArray, steps: Int, vocab: Int) {
        check(!isFinal) { "decoder was finalized; call reset() to start a new utterance" }
        for (t in 0 until steps) {
            val row = t * vocab
            var best = 0
            for (j in 1 until vocab) if (logProbs[row + j] > logProbs[row + best]) best = j
            if (best == blank) {
                trailingBlanks += 1
            } else {
                val p = exp(logProbs[row + best].toDouble())
                val last = runs.lastOrNull()
                if (best == previous && last != null) {
                    last.end = frameOffset + 1
                    last.probSum += p
                    last.count += 1
                } else {
                    runs.add(Run(best, frameOffset, frameOffset + 1, p, 1))
                }
                trailingBlanks = 0
            }
            previous = best
            frameOffset += 1
        }
    }

    /** Gloss ids of the current utterance (greedy decoding commits every gloss at once). */
    val tokens: List<Int> get() = runs.map { it.id }

    val events: List<GlossEvent>
        get() = runs.map { GlossEvent(it.id, it.start * frameShift, it.end * frameShift, it.probSum / it.count) }

    /** True when a rule fires: show the sentence, then call reset(). */
    val isEndpoint: Boolean
        get() {
            val utterance = (frameOffset - utteranceStart) * frameShift
            val trailing = trailingBlanks * frameShift
            return rules.any { it.activated(runs.isNotEmpty(), trailing, utterance) }
        }

    /** No more input for this utterance (Python: finalize; that name is the JVM's finalizer). */
    fun finish() {
        isFinal = true
    }

    /** Starts a new utterance; the global time offset is kept. */
    fun reset() {
        previous = blank
        runs.clear()
        trailingBlanks = 0
        utteranceStart = frameOffset
        isFinal = false
    }
}

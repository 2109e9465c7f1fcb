package com.example.slsdk

import android.graphics.Bitmap
import android.graphics.Rect
import kotlin.math.max
import kotlin.math.roundToInt

// The shared client rules this file implements: demos/README.md, "Client rules", step 4 (preprocessing);
// the web demo (demos/web/js/) is tested equal to the Python runtime on the same rules.

/**
 * A camera frame -> one model frame, float32 CHW [3, S, S], with the steps of slsdk's eval transform
 * (sdk/data/transforms.py) as the manifest states them: resize the shorter side to `input.resize_shorter`
 * (antialiased), centre-crop S x S (`input.crop` "center"), scale the pixels to `input.value_range`, then
 * (x - mean) / std per RGB channel.
 */
class FramePreprocessor(input: InputSpec) {
    val size: Int = input.height
    private val resizeShorter: Int = input.resizeShorter
    val floatsPerFrame: Int get() = 3 * size * size
    private val scale: FloatArray  // value = byte * scale[c] + offset[c] folds value_range, mean and std
    private val offset: FloatArray
    private val pixels = IntArray(size * size)

    init {
        require(input.channels == 3 && input.colour == "RGB" && input.layout == "NTCHW" && input.height == input.width &&
                input.crop == "center" && input.resizeShorter >= input.height) {
            "unsupported input ${input.channels}x${input.height}x${input.width} ${input.colour} ${input.layout}, " +
                "${input.crop} crop after a resize to ${input.resizeShorter}"
        }
        val (lo, hi) = input.valueRange
        scale = FloatArray(3) { ((hi - lo) / 255.0 / input.std[it]).toFloat() }
        offset = FloatArray(3) { ((lo - input.mean[it]) / input.std[it]).toFloat() }
    }

    /**
     * Writes one preprocessed frame into [out] at [at] (3 * S * S floats, CHW). [frame]: an upright ARGB_8888
     * bitmap. [region]: the square signing-space box for the "hands" crop policy, or null for "full".
     */
    fun process(frame: Bitmap, out: FloatArray, at: Int, region: Rect? = null) {
        var img = if (region != null) Bitmap.createBitmap(frame, region.left, region.top, region.width(), region.height()) else frame
        val w = img.width
        val h = img.height
        val r = resizeShorter
        // the resized size, as slsdk.data.transforms.resize_shorter computes it
        val nw = if (h <= w) max(r, (w.toDouble() * r / h).roundToInt()) else r
        val nh = if (h <= w) r else max(r, (h.toDouble() * r / w).roundToInt())
        // halve first: one bilinear step over a large factor would alias where the SDK's resize does not
        while (img.width >= 2 * nw && img.height >= 2 * nh) {
            img = Bitmap.createScaledBitmap(img, img.width / 2, img.height / 2, true)
        }
        val resized = Bitmap.createScaledBitmap(img, nw, nh, true)
        resized.getPixels(pixels, 0, size, (nw - size) / 2, (nh - size) / 2, size, size)  // centre crop
        val plane = size * size
        for (i in 0 until plane) {
            val p = pixels[i]  // 0xAARRGGBB
            out[at + i] = ((p shr 16) and 0xFF) * scale[0] + offset[0]
            out[at + plane + i] = ((p shr 8) and 0xFF) * scale[1] + offset[1]
            out[at + 2 * plane + i] = (p and 0xFF) * scale[2] + offset[2]
        }
    }
}

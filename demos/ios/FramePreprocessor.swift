import CoreGraphics
import CoreImage
import CoreImage.CIFilterBuiltins
import CoreVideo

// The shared client rules this file implements: demos/README.md, "Client rules", step 4 (preprocessing);
// the web demo (demos/web/js/) is tested equal to the Python runtime on the same rules.

/// A camera frame -> one model frame, float32 CHW [3, S, S], with the steps of slsdk's eval transform
/// (sdk/data/transforms.py) as the manifest states them: resize the shorter side to `input.resize_shorter`
/// (antialiased), centre-crop S x S (`input.crop` "center"), scale the pixels to `input.value_range`, then
/// (x - mean) / std per RGB channel.
final class FramePreprocessor {
    let size: Int
    let resizeShorter: Int
    private let scale: [Float]   // value = byte * scale[c] + offset[c] folds value_range, mean and std
    private let offset: [Float]
    private let context = CIContext(options: [.workingColorSpace: NSNull()])
    private let colorSpace = CGColorSpaceCreateDeviceRGB()
    private var rgba: [UInt8]

    init(input: InputSpec) throws {
        guard input.channels == 3, input.colour == "RGB", input.layout == "NTCHW", input.height == input.width,
              input.crop == "center", input.resizeShorter >= input.height,
              input.valueRange.count == 2, input.mean.count == 3, input.std.count == 3 else {
            throw ManifestError.unsupported("input \(input.channels)x\(input.height)x\(input.width) "
                                            + "\(input.colour) \(input.layout), \(input.crop) crop after a resize "
                                            + "to \(input.resizeShorter)")
        }
        size = input.height
        resizeShorter = input.resizeShorter
        let lo = input.valueRange[0], hi = input.valueRange[1]
        scale = (0..<3).map { Float((hi - lo) / 255.0 / input.std[$0]) }
        offset = (0..<3).map { Float((lo - input.mean[$0]) / input.std[$0]) }
        rgba = [UInt8](repeating: 0, count: size * size * 4)
    }

    var floatsPerFrame: Int { 3 * size * size }

    /// Appends one preprocessed frame (3 * S * S floats, CHW) to `out`.
    /// `pixelBuffer`: an upright BGRA camera frame. `region`: the square signing-space box in pixels
    /// (top-left origin) for the "hands" crop policy, or nil for "full" (the whole frame).
    func append(_ pixelBuffer: CVPixelBuffer, region: CGRect? = nil, to out: inout [Float]) {
        var image = CIImage(cvPixelBuffer: pixelBuffer)
        if let r = region {  // Core Image's origin is bottom-left
            let h = image.extent.height
            image = image.cropped(to: CGRect(x: r.minX, y: h - r.maxY, width: r.width, height: r.height))
        }
        let w = Double(image.extent.width), h = Double(image.extent.height)
        let r = resizeShorter
        // the resized size, as slsdk.data.transforms.resize_shorter computes it
        let (nw, nh) = h <= w ? (max(r, Int((w * Double(r) / h).rounded())), r)
                              : (r, max(r, Int((h * Double(r) / w).rounded())))
        let lanczos = CIFilter.lanczosScaleTransform()
        lanczos.inputImage = image.transformed(by: CGAffineTransform(translationX: -image.extent.minX,
                                                                     y: -image.extent.minY))
        lanczos.scale = Float(Double(nh) / h)
        lanczos.aspectRatio = Float((Double(nw) / w) / (Double(nh) / h))
        guard let resized = lanczos.outputImage else { return }
        // centre crop at (x0, y0) from the top-left, as the SDK does; flipped to Core Image coordinates
        let x0 = (nw - size) / 2, y0 = (nh - size) / 2
        let crop = CGRect(x: resized.extent.minX + CGFloat(x0), y: resized.extent.minY + CGFloat(nh - y0 - size),
                          width: CGFloat(size), height: CGFloat(size))
        guard let cg = context.createCGImage(resized, from: crop, format: .RGBA8, colorSpace: colorSpace) else { return }
        let s = size
        rgba.withUnsafeMutableBytes { buf in
            // a bitmap context stores rows top to bottom: byte 0 is the top-left pixel, R G B A
            let ctx = CGContext(data: buf.baseAddress, width: s, height: s, bitsPerComponent: 8, bytesPerRow: s * 4,
                                space: colorSpace, bitmapInfo: CGImageAlphaInfo.premultipliedLast.rawValue)
            ctx?.draw(cg, in: CGRect(x: 0, y: 0, width: s, height: s))
        }
        let plane = s * s, base = out.count
        out.append(contentsOf: repeatElement(0, count: 3 * plane))
        out.withUnsafeMutableBufferPointer { dst in
            for i in 0..<plane {
                for c in 0..<3 {
                    dst[base + c * plane + i] = Float(rgba[i * 4 + c]) * scale[c] + offset[c]
                }
            }
        }
    }
}

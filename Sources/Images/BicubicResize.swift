import Foundation
import TensorEngine

extension Image {
    /// PIL's `Image.resize(size, Image.BICUBIC)` for 8-bit images (what torchvision's `Resize` with
    /// `InterpolationMode.BICUBIC` calls on a PIL image): separable convolution with the cubic
    /// kernel a = -0.5, support 2 widened by the scale factor when shrinking (PIL's built-in
    /// antialiasing), weights normalised per output pixel and quantised to PIL's 22-bit fixed point,
    /// a horizontal pass then a vertical pass, each rounded and clipped to 0...255 (as
    /// `ImagingResample` does: horizontal first, each pass only when that size changes).
    /// Matches PIL's output byte for byte on the cases the fixtures cover; PIL's `reducing_gap`
    /// shortcut (off by default) is not implemented.
    public func resizedBicubic(width nw: Int, height nh: Int) -> Image { resized(width: nw, height: nh, filter: .bicubic) }

    /// PIL's `Image.resize(size, Image.BOX)` for 8-bit images: the same resampling as
    /// `resizedBicubic` with PIL's box filter (support 0.5, 1 on (-0.5, 0.5]), so each output
    /// pixel averages the input pixels its footprint covers (exactly 2x2 blocks when halving
    /// even sides).
    public func resizedBox(width nw: Int, height nh: Int) -> Image { resized(width: nw, height: nh, filter: .box) }

    /// PIL's resampling filters (`ImagingResample`'s `filter` structs).
    enum ResampleFilter {
        case bicubic, box
        var support: Double { self == .bicubic ? 2 : 0.5 }
        func callAsFunction(_ v: Double) -> Double {
            switch self {
            case .bicubic:
                let a = -0.5, x = abs(v)
                if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
                if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
                return 0
            case .box:
                return v > -0.5 && v <= 0.5 ? 1 : 0
            }
        }
    }

    func resized(width nw: Int, height nh: Int, filter: ResampleFilter) -> Image {
        var image = self
        if nw != width { image = image.resampledHorizontally(to: nw, filter: filter) }
        if nh != height { image = image.resampledVertically(to: nh, filter: filter) }
        return image
    }

    static func bicubicCoefficients(inSize: Int, outSize: Int) -> [(start: Int, weights: [Int64])] {
        resampleCoefficients(inSize: inSize, outSize: outSize, filter: .bicubic)
    }

    /// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for one axis: per output index, the
    /// first input index and the fixed-point weights.
    static func resampleCoefficients(inSize: Int, outSize: Int, filter: ResampleFilter) -> [(start: Int, weights: [Int64])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = Swift.max(scale, 1)
        let support = filter.support * filterScale
        let precisionBits = 32 - 8 - 2
        let cubic = filter
        return (0..<outSize).map { xx in
            let center = (Double(xx) + 0.5) * scale
            let ss = 1 / filterScale
            let xmin = Swift.max(Int(center - support + 0.5), 0)  // C's (int) truncates toward zero
            let xmax = Swift.min(Int(center + support + 0.5), inSize) - xmin
            var w = (0..<xmax).map { cubic((Double($0 + xmin) - center + 0.5) * ss) }
            let total = w.reduce(0, +)
            if total != 0 { w = w.map { $0 / total } }
            let fixed = w.map { v -> Int64 in
                let s = v * Double(1 << precisionBits)
                return Int64(v < 0 ? -0.5 + s : 0.5 + s)  // truncation toward zero, as (int) in C
            }
            return (xmin, fixed)
        }
    }

    private static func clip8(_ acc: Int64) -> UInt8 {
        let v = acc >> 22
        return UInt8(Swift.max(0, Swift.min(255, v)))
    }

    private func resampledHorizontally(to nw: Int, filter: ResampleFilter) -> Image {
        let coeffs = Image.resampleCoefficients(inSize: width, outSize: nw, filter: filter)
        var out = [UInt8](repeating: 0, count: nw * height * channels)
        for y in 0..<height {
            for (x, k) in coeffs.enumerated() {
                for c in 0..<channels {
                    var acc: Int64 = 1 << 21
                    for (i, w) in k.weights.enumerated() { acc += Int64(pixels[(y * width + k.start + i) * channels + c]) * w }
                    out[(y * nw + x) * channels + c] = Image.clip8(acc)
                }
            }
        }
        return Image(width: nw, height: height, channels: channels, pixels: out)
    }

    private func resampledVertically(to nh: Int, filter: ResampleFilter) -> Image {
        let coeffs = Image.resampleCoefficients(inSize: height, outSize: nh, filter: filter)
        var out = [UInt8](repeating: 0, count: width * nh * channels)
        for (y, k) in coeffs.enumerated() {
            for x in 0..<width {
                for c in 0..<channels {
                    var acc: Int64 = 1 << 21
                    for (i, w) in k.weights.enumerated() { acc += Int64(pixels[((k.start + i) * width + x) * channels + c]) * w }
                    out[(y * width + x) * channels + c] = Image.clip8(acc)
                }
            }
        }
        return Image(width: width, height: nh, channels: channels, pixels: out)
    }

    /// The `height` x `width` window at (`top`, `left`).
    public func cropped(top: Int, left: Int, width w: Int, height h: Int) -> Image {
        precondition(top >= 0 && left >= 0 && top + h <= height && left + w <= width, "Image: crop outside the image")
        var out = [UInt8]()
        out.reserveCapacity(w * h * channels)
        for y in top..<(top + h) {
            let start = (y * width + left) * channels
            out += pixels[start..<(start + w * channels)]
        }
        return Image(width: w, height: h, channels: channels, pixels: out)
    }
}

extension Image {
    /// ADM's `center_crop_arr` (guided-diffusion, used by DiT's training and by the public
    /// Diffusion Classifier code's DiT evaluation): while the short side is at least 2 x `size`,
    /// halve both sides (floored) with PIL's BOX filter; then PIL BICUBIC so the short side is
    /// `size` (each side `round(side x size / short)`, Python's round half to even); then the
    /// centre `size` x `size` window (offsets floored). Matches PIL byte for byte on the committed
    /// fixtures (odd sides halved twice, one halving then bicubic down, bicubic up).
    public func centerCropArr(size: Int) -> Image {
        precondition(size >= 1)
        var image = self
        while Swift.min(image.width, image.height) >= 2 * size { image = image.resizedBox(width: image.width / 2, height: image.height / 2) }
        let scale = Double(size) / Double(Swift.min(image.width, image.height))
        image = image.resizedBicubic(width: Int((Double(image.width) * scale).rounded(.toNearestOrEven)),
                                     height: Int((Double(image.height) * scale).rounded(.toNearestOrEven)))
        return image.cropped(top: (image.height - size) / 2, left: (image.width - size) / 2, width: size, height: size)
    }

    /// A PNG or JPEG file as ADM / DiT input: RGB, `centerCropArr(size:)`, byte / 255 x 2 - 1, as
    /// [1, 3, size, size] (what `ToTensor()` and `Normalize([0.5] * 3, [0.5] * 3)` give). Errors
    /// name the file.
    public static func centerCroppedInput(_ url: URL, size: Int) throws -> Tensor {
        let crop = try read(url, channels: 3).centerCropArr(size: size)
        var out = [Float](repeating: 0, count: 3 * size * size)
        for c in 0..<3 {
            for i in 0..<(size * size) { out[c * size * size + i] = (Float(crop.pixels[i * 3 + c]) / 255 - 0.5) / 0.5 }
        }
        return Tensor(shape: [1, 3, size, size], out)
    }
}

/// The image preprocessing of the Diffusion Classifier's public code for Stable Diffusion:
/// `Resize(size, interpolation=BICUBIC)`, `CenterCrop(size)`, `ToTensor()`,
/// `Normalize([0.5], [0.5])` on an RGB PIL image.
public enum StableDiffusionImageInput {
    /// torchvision's `Resize(size)` output size: the shorter side becomes `size`, the longer
    /// `Int(size * long / short)` (truncated, as torchvision computes it).
    public static func resizedSize(width: Int, height: Int, size: Int) -> (width: Int, height: Int) {
        if width <= height { return (size, Int(Double(size) * Double(height) / Double(width))) }
        return (Int(Double(size) * Double(width) / Double(height)), size)
    }

    /// The image as [1, 3, size, size] in [-1, 1]: PIL bicubic resize of the shorter side to
    /// `size` (`Image.resizedBicubic`), centre crop (offsets `round((h - size) / 2)` with Python's
    /// round-half-to-even, as torchvision's `CenterCrop`), then byte / 255 * 2 - 1.
    public static func tensorPixels(_ image: Image, size: Int) -> (pixels: [Float], shape: [Int]) {
        precondition(image.channels == 3, "StableDiffusionImageInput: RGB images only")
        let target = resizedSize(width: image.width, height: image.height, size: size)
        let resized = image.resizedBicubic(width: target.width, height: target.height)
        let top = Int((Double(resized.height - size) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(resized.width - size) / 2).rounded(.toNearestOrEven))
        let crop = resized.cropped(top: top, left: left, width: size, height: size)
        var out = [Float](repeating: 0, count: 3 * size * size)
        for c in 0..<3 {
            for i in 0..<(size * size) {
                out[c * size * size + i] = (Float(crop.pixels[i * 3 + c]) / 255 - 0.5) / 0.5
            }
        }
        return (out, [1, 3, size, size])
    }
}

extension StableDiffusionImageInput {
    /// A PNG or JPEG file as the public code's SD input [1, 3, size, size] in [-1, 1] (see
    /// `tensorPixels`). Errors name the file.
    public static func load(_ url: URL, size: Int) throws -> Tensor {
        let (pixels, shape) = tensorPixels(try Image.read(url, channels: 3), size: size)
        return Tensor(shape: shape, pixels)
    }
}

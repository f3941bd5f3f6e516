import CImageSupport
import Foundation

/// A data file or image that could not be read; names the file and the problem.
/// An image file that cannot be read, decoded, encoded or written (names the file).
public struct ImageError: Error, CustomStringConvertible {
    public let file: String
    public let message: String
    public init(file: String, _ message: String) { self.file = file; self.message = message }
    public var description: String { "\(file): \(message)" }
}

/// An 8-bit image, row-major with interleaved channels (1 = gray, 3 = RGB).
public struct Image: Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(channels == 1 || channels == 3, "Image: channels must be 1 or 3, got \(channels)")
        precondition(pixels.count == width * height * channels,
                     "Image: \(pixels.count) bytes for \(width)x\(height)x\(channels)")
        self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
    }

    /// Decodes a PNG or JPEG file (by its signature, not its name) to `channels` channels.
    public static func read(_ url: URL, channels: Int) throws -> Image {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ImageError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
        return try decode(data, channels: channels, name: url.path)
    }

    public static func decode(_ data: Data, channels: Int, name: String) throws -> Image {
        let bytes = [UInt8](data)
        let isPNG = bytes.starts(with: [0x89, 0x50, 0x4E, 0x47])
        let isJPEG = bytes.starts(with: [0xFF, 0xD8, 0xFF])
        guard isPNG || isJPEG else { throw ImageError(file: name, "not a PNG or JPEG file") }
        var out: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { b in
            isPNG ? cis_decode_png(b.baseAddress, b.count, Int32(channels), &out, &w, &h, &err, err.count)
                  : cis_decode_jpeg(b.baseAddress, b.count, Int32(channels), &out, &w, &h, &err, err.count)
        }
        guard status == 0, let out else {
            throw ImageError(file: name, "cannot decode \(isPNG ? "PNG" : "JPEG"): \(String(cString: err))")
        }
        defer { cis_free(out) }
        let n = Int(w) * Int(h) * channels
        return Image(width: Int(w), height: Int(h), channels: channels, pixels: Array(UnsafeBufferPointer(start: out, count: n)))
    }

    /// PNG bytes of this image.
    public func pngData() throws -> Data {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var err = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer { p in
            cis_encode_png(p.baseAddress, Int32(width), Int32(height), Int32(channels), &out, &length, &err, err.count)
        }
        guard status == 0, let out else { throw ImageError(file: "<png>", "cannot encode PNG: \(String(cString: err))") }
        defer { cis_free(out) }
        return Data(bytes: out, count: length)
    }

    /// Writes a PNG atomically.
    public func writePNG(to url: URL) throws {
        do { try pngData().write(to: url, options: .atomic) } catch let e as ImageError {
            throw ImageError(file: url.path, e.message)
        } catch { throw ImageError(file: url.path, "cannot write: \(error.localizedDescription)") }
    }

    /// Bilinear resize (half-pixel centres, as PIL/torchvision without antialiasing).
    public func resizedBilinear(width nw: Int, height nh: Int) -> Image {
        if nw == width && nh == height { return self }
        var out = [UInt8](repeating: 0, count: nw * nh * channels)
        let sx = Double(width) / Double(nw), sy = Double(height) / Double(nh)
        for y in 0..<nh {
            let fy = Swift.max(0, (Double(y) + 0.5) * sy - 0.5)
            let y0 = Swift.min(Int(fy), height - 1), y1 = Swift.min(y0 + 1, height - 1), wy = fy - Double(y0)
            for x in 0..<nw {
                let fx = Swift.max(0, (Double(x) + 0.5) * sx - 0.5)
                let x0 = Swift.min(Int(fx), width - 1), x1 = Swift.min(x0 + 1, width - 1), wx = fx - Double(x0)
                for c in 0..<channels {
                    func at(_ yy: Int, _ xx: Int) -> Double { Double(pixels[(yy * width + xx) * channels + c]) }
                    let v = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1))
                    out[(y * nw + x) * channels + c] = UInt8(Swift.max(0, Swift.min(255, v.rounded())))
                }
            }
        }
        return Image(width: nw, height: nh, channels: channels, pixels: out)
    }
}

extension Image {
    /// Tiles NCHW images with values in [-1, 1] into one grid image (`columns` per row, a
    /// `padding`-pixel border), for sample sheets.
    public static func grid(_ images: [[Float]], channels: Int, height: Int, width: Int, columns: Int, padding: Int = 2) -> Image {
        let rows = (images.count + columns - 1) / Swift.max(columns, 1)
        let gw = columns * (width + padding) + padding, gh = rows * (height + padding) + padding
        var pixels = [UInt8](repeating: 255, count: gw * gh * channels)
        for (k, img) in images.enumerated() {
            let ox = padding + (k % columns) * (width + padding), oy = padding + (k / columns) * (height + padding)
            for c in 0..<channels { for y in 0..<height { for x in 0..<width {
                let v = img[(c * height + y) * width + x]
                let byte = UInt8(Swift.max(0, Swift.min(255, ((v + 1) * 127.5).rounded())))
                pixels[((oy + y) * gw + ox + x) * channels + c] = byte
            } } }
        }
        return Image(width: gw, height: gh, channels: channels, pixels: pixels)
    }
}

extension Image {
    /// One image [C, H, W] (`shape`) with values in [0, 1], as 8-bit (rounded, clamped).
    public init(unitPixels x: [Float], shape: [Int]) {
        let (c, h, w) = (shape[0], shape[1], shape[2])
        var pixels = [UInt8](repeating: 0, count: c * h * w)
        for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            pixels[(y * w + xx) * c + ch] = UInt8(Swift.max(0, Swift.min(255, (x[(ch * h + y) * w + xx] * 255).rounded())))
        } } }
        self.init(width: w, height: h, channels: c, pixels: pixels)
    }

    /// The image as CHW values in [-1, 1] (byte / 127.5 - 1), as `grid` takes them.
    public var signedPixels: [Float] {
        var chw = [Float](repeating: 0, count: channels * height * width)
        for ch in 0..<channels { for y in 0..<height { for x in 0..<width {
            chw[(ch * height + y) * width + x] = Float(pixels[(y * width + x) * channels + ch]) / 127.5 - 1
        } } }
        return chw
    }
}

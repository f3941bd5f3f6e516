// A JPEG image decoded to gray and to RGB (libpng/libjpeg behind CImageSupport, then Image).
import Images
import Foundation
import FuzzSupport

private let name = "fuzz-image.jpeg"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJPEG(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    for channels in [1, 3] {
        do {
            let image = try Image.decode(data, channels: channels, name: name)
            FuzzCheck.require(image.width > 0 && image.height > 0 && image.channels == channels
                              && image.pixels.count == image.width * image.height * channels,
                              "decoded \(image.width)x\(image.height)x\(image.channels) with \(image.pixels.count) bytes")
        } catch { FuzzCheck.errorNames(error, name) }
    }
    return 0
}

import Foundation
import Images
import TensorEngine

extension Image {
    /// A PNG or JPEG file as a model input [1, C, H, W] in [-1, 1]: decoded to `channels`
    /// channels (`Image.read`), resized bilinearly to `width` x `height` when its size differs
    /// (`resizedBilinear`, as `ImageFolder` does; no crop, so the aspect ratio is not kept), then
    /// mapped exactly as `ImageDataset.images` (byte / 127.5 - 1). Errors name the file.
    public static func modelInput(_ url: URL, channels: Int, height: Int, width: Int) throws -> Tensor {
        var image = try read(url, channels: channels)
        if image.width != width || image.height != height { image = image.resizedBilinear(width: width, height: height) }
        let one = ImageDataset(name: url.lastPathComponent, height: height, width: width, channels: channels,
                               pixels: image.pixels, labels: [0], classNames: ["?"])
        return one.images([0])
    }
}

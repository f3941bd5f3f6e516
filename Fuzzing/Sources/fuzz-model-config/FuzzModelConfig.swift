// A model folder's config.json, read by every model config parser: UNet2DModel,
// UNet2DConditionModel, AutoencoderKL, CLIPTextModel and DiTTransformer2DModel (parse and
// validate, then the values the model builders derive from a valid config).
import DiT
import Diffusion
import Foundation
import FuzzSupport
import StableDiffusion

private let name = "fuzz/config.json"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModelConfig(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    do {
        let c = try UNet2DConfig.parse(data, file: name)
        _ = c.timeEmbedDim
    } catch { FuzzCheck.errorNames(error, name) }
    do {
        let c = try UNet2DConditionConfig.parse(data, file: name)
        _ = c.timeEmbedDim
    } catch { FuzzCheck.errorNames(error, name) }
    do {
        _ = try AutoencoderKLConfig.parse(data, file: name)
    } catch { FuzzCheck.errorNames(error, name) }
    do {
        _ = try CLIPTextConfig.parse(data, file: name)
    } catch { FuzzCheck.errorNames(error, name) }
    do {
        let c = try DiTTransformer2DConfig.parse(data, file: name)
        _ = (c.gridSize, c.innerDim, c.outputChannels, c.learnsSigma, c.classCount)
    } catch { FuzzCheck.errorNames(error, name) }
    return 0
}

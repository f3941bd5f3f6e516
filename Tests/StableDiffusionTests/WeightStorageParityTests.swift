import Datasets
import Diffusion
import Foundation
import Images
import NeuralNetworks
import StableDiffusion
import TensorEngine
import XCTest

/// `--weights-dtype` on the tiny fixtures. The U-Net and VAE fixtures store F16 weights, so fp16
/// storage holds exactly the values fp32 storage holds and runs the same Float32 kernels on them:
/// outputs are bitwise identical. The text encoders store F32 weights, which fp16 rounds; bf16
/// rounds everything. Rounded storage is checked two ways: exactly against a Float32 model whose
/// weights were rounded first (the storage adds no error of its own), and within a tolerance
/// against the unrounded model (the rounding's effect; bounds in the tests, with the measured values).
final class WeightStorageParityTests: XCTestCase {
    /// A copy of `model` (Float32-stored) whose Linear / Conv2d / Embedding weights are rounded to `format`.
    func roundWeights(_ model: Module, _ format: HalfFormat) {
        for (_, p) in model.allParameters() where p.storable {
            p.assign(HalfTensor(rounding: p.value, to: format).float())
        }
    }

    func unetOutput(_ model: UNet2DConditionModel, _ io: SafetensorsFile) throws -> Tensor {
        let sample = try io.tensor("sample"), states = try io.tensor("encoder_hidden_states")
        return Autograd.noGrad { model(sample, timesteps: [10, 500], encoderHiddenStates: states) }
    }

    func checkUNet(_ name: String) throws {
        let io = try SafetensorsFile(url: fixtureURL(name).appendingPathComponent("io.safetensors"))
        let full = try UNet2DConditionModel.load(from: fixtureURL(name))
        let half = try UNet2DConditionModel.load(from: fixtureURL(name), weightStorage: .float16)
        let brain = try UNet2DConditionModel.load(from: fixtureURL(name), weightStorage: .bfloat16)
        let reference = try unetOutput(full, io)
        XCTAssertEqual(try unetOutput(half, io).scalars, reference.scalars, "\(name): fp16 storage of F16 weights is exact")
        let rounded = try UNet2DConditionModel.load(from: fixtureURL(name))
        roundWeights(rounded, .bfloat16)
        let b = try unetOutput(brain, io)
        XCTAssertEqual(b.scalars, try unetOutput(rounded, io).scalars, "\(name): bf16 storage = Float32 on bf16-rounded weights")
        // bf16 keeps 8 significant bits (relative rounding error up to 2^-9 = 0.2% per weight);
        // the errors of many weights partly cancel: measured 3.9e-3 (sd1) and 5.6e-3 (sd2).
        let difference = relativeDifference(b, reference)
        print("\(name) bf16: relative difference to fp32 \(difference)")
        XCTAssertLessThan(difference, 1e-2, name)
        XCTAssertLessThan(relativeDifference(b, try io.tensor("output")), 1e-2, "\(name) against diffusers")
        // Bytes: every Linear / Conv2d weight halves; biases and norms stay Float32.
        let storable = full.allParameters().filter { $0.parameter.storable }.reduce(0) { $0 + $1.parameter.count }
        XCTAssertEqual(full.parameterByteCount, 4 * full.parameterCount)
        XCTAssertEqual(half.parameterByteCount, full.parameterByteCount - 2 * storable)
        XCTAssertEqual(brain.parameterByteCount, half.parameterByteCount)
        XCTAssertEqual(half.parameterCount, full.parameterCount)
        XCTAssertGreaterThan(Double(storable) / Double(full.parameterCount), 0.9, "most parameters are layer weights")
    }

    func testUNetSD1LikeStorageParity() throws { try checkUNet("unet_sd1") }

    func testUNetSD2LikeStorageParity() throws { try checkUNet("unet_sd2") }

    func testVAEStorageParity() throws {
        let io = try SafetensorsFile(url: fixtureURL("vae/io.safetensors"))
        let images = try io.tensor("images"), latents = try io.tensor("latents")
        func run(_ vae: AutoencoderKL) -> (Tensor, Tensor) { Autograd.noGrad { (vae.encode(images), vae.decode(latents)) } }
        let full = run(try AutoencoderKL.load(from: fixtureURL("vae")))
        let halfVAE = try AutoencoderKL.load(from: fixtureURL("vae"), weightStorage: .float16)
        let half = run(halfVAE)
        XCTAssertEqual(half.0.scalars, full.0.scalars, "encode: exact")
        XCTAssertEqual(half.1.scalars, full.1.scalars, "decode: exact")
        XCTAssertLessThan(halfVAE.parameterByteCount, 4 * halfVAE.parameterCount * 6 / 10)
        let rounded = try AutoencoderKL.load(from: fixtureURL("vae"))
        roundWeights(rounded, .bfloat16)
        let brain = run(try AutoencoderKL.load(from: fixtureURL("vae"), weightStorage: .bfloat16))
        XCTAssertEqual(brain.0.scalars, run(rounded).0.scalars)
        XCTAssertEqual(brain.1.scalars, run(rounded).1.scalars)
        XCTAssertLessThan(relativeDifference(brain.0, full.0), 1e-2)
        XCTAssertLessThan(relativeDifference(brain.1, full.1), 1e-2)
    }

    /// F32 text encoder weights: fp16 and bf16 storage round them. Equal to Float32 on rounded
    /// weights; against transformers within 2e-3 (fp16: 11 significant bits, up to 2^-12 relative
    /// per weight) and 1e-2 (bf16).
    func testTextEncoderStorageParity() throws {
        for name in ["sd1", "sd2"] {
            let io = try SafetensorsFile(url: fixtureURL(name).appendingPathComponent("io.safetensors"))
            let ids = try io.tensor("input_ids"), expected = try io.tensor("last_hidden_state")
            for (storage, tolerance) in [(WeightStorage.float16, 2e-3), (.bfloat16, 1e-2)] {
                let model = try CLIPTextModel.load(from: fixtureURL(name), weightStorage: storage)
                let rounded = try CLIPTextModel.load(from: fixtureURL(name))
                roundWeights(rounded, storage.halfFormat!)
                let out = Autograd.noGrad { model(ids).lastHiddenState }
                XCTAssertEqual(out.scalars, Autograd.noGrad { rounded(ids).lastHiddenState }.scalars, "\(name) \(storage)")
                let difference = relativeDifference(out, expected)
                XCTAssertLessThan(difference, tolerance, "\(name) \(storage)")
                print("text encoder \(name) \(storage.rawValue): relative difference to transformers \(difference)")
            }
        }
    }

    /// The whole zero-shot path in fp16: latents exact (F16 VAE), embeddings and per-class errors
    /// within the fp16 rounding of the F32 text encoder.
    func testPipelineInHalfStorage() throws {
        let full = try StableDiffusionPipeline.load(from: fixtureURL("pipeline"))
        let half = try StableDiffusionPipeline.load(from: fixtureURL("pipeline"), weightStorage: .float16)
        let image = try StableDiffusionImageInput.load(fixtureURL("pipeline/image.png"), size: 16)
        XCTAssertEqual(half.latents(image).scalars, full.latents(image).scalars)
        let e16 = try half.promptEmbeddings(labels: ["cat", "dog", "bird"]), e32 = try full.promptEmbeddings(labels: ["cat", "dog", "bird"])
        let difference = relativeDifference(e16, e32)
        print("pipeline fp16: embeddings relative difference \(difference)")
        XCTAssertLessThan(difference, 2e-3)
        let x = full.latents(image)
        var g = RandomGenerator(seed: 4)
        let eps = Tensor.randn(x.shape, generator: &g)
        let a: Float = 0.5
        let xt = x * a.squareRoot() + eps * (1 - a).squareRoot()
        for k in 0..<3 {
            let m16 = half.conditionedModel(embeddings: e16), m32 = full.conditionedModel(embeddings: e32)
            let out16 = Autograd.noGrad { m16.predict(xt, timesteps: [500], conditions: Tensor(shape: [1], [Float(k)])) }
            let out32 = Autograd.noGrad { m32.predict(xt, timesteps: [500], conditions: Tensor(shape: [1], [Float(k)])) }
            XCTAssertLessThan(relativeDifference(out16, out32), 2e-3, "class \(k)")
        }
        XCTAssertLessThan(Double(half.unet.parameterByteCount), 0.55 * Double(full.unet.parameterByteCount))
    }
}

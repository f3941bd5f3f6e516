import Diffusion
import Foundation
import NeuralNetworks
import StableDiffusion
import TensorEngine
import XCTest

/// Parity with diffusers' AutoencoderKL on the tiny random-weight folder written by
/// `tools/make_sd_fixtures.py unet` (block_out_channels [8, 16], 4 groups, 16x16 RGB): scaled
/// posterior means and log-variances within 1e-4 relative, decoded images too.
final class AutoencoderKLTests: XCTestCase {
    func testEncoderMatchesDiffusers() throws {
        let vae = try AutoencoderKL.load(from: fixtureURL("vae"))
        let io = try SafetensorsFile(url: fixtureURL("vae/io.safetensors"))
        let images = try io.tensor("images")
        let (latents, moments) = Autograd.noGrad { (vae.encode(images), vae.moments(images)) }
        XCTAssertEqual(latents.shape, [2, 4, 8, 8])
        XCTAssertLessThan(relativeDifference(latents, try io.tensor("latents")), 1e-4)
        XCTAssertLessThan(relativeDifference(moments.logVariance, try io.tensor("logvar")), 1e-4)
        XCTAssertEqual(vae.config.scalingFactor, 0.18215)
        XCTAssertEqual(vae.parameterCount, vae.config.parameterCount, "analytic count")
    }

    func testDecoderMatchesDiffusers() throws {
        let vae = try AutoencoderKL.load(from: fixtureURL("vae"))
        let io = try SafetensorsFile(url: fixtureURL("vae/io.safetensors"))
        let decoded = Autograd.noGrad { vae.decode(try! io.tensor("latents")) }
        XCTAssertLessThan(relativeDifference(decoded, try io.tensor("decoded")), 1e-4)
    }

    // The same parity with every op on the reference backend (plain loops).
    func testEncoderMatchesDiffusersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try testEncoderMatchesDiffusers() }
    }

    func testDecoderMatchesDiffusersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) { try testDecoderMatchesDiffusers() }
    }
}

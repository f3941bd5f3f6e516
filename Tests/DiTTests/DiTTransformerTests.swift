import DiT
import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
}

func temporaryDirectory(_ tag: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// Parity with diffusers' DiTTransformer2DModel on the random-weight (F16-stored) folders written by
/// `tools/make_dit_fixtures.py models`: forward within 1e-4 relative, the input gradient of
/// sum(output * R) within 1e-3.
final class DiTTransformerParityTests: XCTestCase {
    func checkParity(_ name: String, learnsSigma: Bool) throws -> (DiTTransformer2DModel, SafetensorsFile) {
        let model = try DiTTransformer2DModel.load(from: fixtureURL(name))
        XCTAssertEqual(model.config.learnsSigma, learnsSigma)
        let io = try SafetensorsFile(url: fixtureURL(name).appendingPathComponent("io.safetensors"))
        let sample = try io.tensor("sample"), labels = try io.tensor("class_labels")
        XCTAssertEqual(labels.scalars.last, Float(model.nullClass), "the fixture exercises the null class")
        let timesteps = try io.tensor("timesteps").scalars
        let x = Tensor(shape: sample.shape, storage: sample.storage, requiresGrad: true)
        let out = model(x, timesteps: timesteps, classLabels: labels)
        XCTAssertLessThan(relativeDifference(out, try io.tensor("output")), 1e-4, "\(name) forward")
        (out * (try io.tensor("weights"))).sum().backward()
        XCTAssertLessThan(relativeDifference(x.grad!, try io.tensor("grad_sample")), 1e-3, "\(name) d/d sample")
        let count = Int(try io.tensor("parameter_count").scalars[0])
        XCTAssertEqual(model.parameterCount, count)
        XCTAssertEqual(model.config.parameterCount, count, "analytic count")
        // The classifier's entry point: the noise half (all of it without learned sigma).
        let eps = Autograd.noGrad { model.predict(sample, timesteps: timesteps, conditions: labels) }
        let c = model.config.inChannels
        XCTAssertEqual(eps.shape, [sample.shape[0], c, sample.shape[2], sample.shape[3]])
        XCTAssertEqual(eps.scalars, out.sliced(axis: 1, 0..<c).scalars)
        return (model, io)
    }

    func testLearnedSigmaConfigMatchesDiffusers() throws {
        let (model, _) = try checkParity("dit_sigma", learnsSigma: true)
        XCTAssertEqual(model.config.outputChannels, 8)
    }

    func testPlainConfigMatchesDiffusersAtTwoSizes() throws {
        let (model, io) = try checkParity("dit_plain", learnsSigma: false)
        XCTAssertNil(model.config.outChannels, "out_channels null in config.json")
        XCTAssertTrue(model.config.normElementwiseAffine)
        // 16x16 input against the 12x12 sample size: the positional table is rebuilt (base size 3).
        let out = Autograd.noGrad {
            model(try! io.tensor("sample_16"), timesteps: [7, 640], classLabels: Tensor(shape: [2], [2, 5]))
        }
        XCTAssertLessThan(relativeDifference(out, try io.tensor("output_16")), 1e-4, "16x16")
    }

    // The same parity with every op on the reference backend (plain loops).
    func testConfigsMatchDiffusersOnReferenceBackend() throws {
        try Engine.withBackend(.reference) {
            try testLearnedSigmaConfigMatchesDiffusers()
            try testPlainConfigMatchesDiffusersAtTwoSizes()
        }
    }

    func testCheckpointKeysAreDiffusers() throws {
        let model = try DiTTransformer2DModel.load(from: fixtureURL("dit_sigma"))
        let keys = Set(model.allParameters().map(\.key))
        let file = try SafetensorsFile(url: fixtureURL("dit_sigma/diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(keys, Set(file.names))
        for key in ["pos_embed.proj.weight", "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight",
                    "transformer_blocks.1.norm1.emb.timestep_embedder.linear_2.bias", "transformer_blocks.0.norm1.linear.weight",
                    "transformer_blocks.0.attn1.to_out.0.weight", "transformer_blocks.1.ff.net.0.proj.weight",
                    "transformer_blocks.1.ff.net.2.bias", "proj_out_1.weight", "proj_out_2.bias"] {
            XCTAssertTrue(keys.contains(key), key)
        }
        XCTAssertFalse(keys.contains("pos_embed.pos_embed"), "a non-persistent buffer in diffusers, not a checkpoint key")
        // The label table has the null class's row.
        XCTAssertEqual(try file.info("transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight").shape, [6, 32])
    }

    func testSixteenBitWeightsGiveNearlyTheSameOutput() throws {
        // The fixture's weights are F16 values, so F16 storage holds them exactly.
        let full = try DiTTransformer2DModel.load(from: fixtureURL("dit_sigma"))
        let half = try DiTTransformer2DModel.load(from: fixtureURL("dit_sigma"), weightStorage: .float16)
        XCTAssertTrue(half.hasHalfPrecisionWeights)
        let io = try SafetensorsFile(url: fixtureURL("dit_sigma/io.safetensors"))
        let sample = try io.tensor("sample"), labels = try io.tensor("class_labels"), ts = try io.tensor("timesteps").scalars
        let a = Autograd.noGrad { full(sample, timesteps: ts, classLabels: labels) }
        let b = Autograd.noGrad { half(sample, timesteps: ts, classLabels: labels) }
        XCTAssertLessThan(relativeDifference(b, a), 1e-6)
    }

    func testSaveThenLoadRoundTrips() throws {
        let model = try DiTTransformer2DModel.load(from: fixtureURL("dit_plain"))
        let dir = try temporaryDirectory("dit")
        defer { try? FileManager.default.removeItem(at: dir) }
        try model.save(to: dir)
        let again = try DiTTransformer2DModel.load(from: dir)
        XCTAssertEqual(again.config, model.config)
        for ((k1, t1), (k2, t2)) in zip(model.namedParameters(), again.namedParameters()) {
            XCTAssertEqual(k1, k2)
            XCTAssertEqual(t1.scalars, t2.scalars, k1)
        }
    }
}

/// Central finite differences of L = sum(out * R) (accumulated in Float64) against the analytic
/// input gradient, on a tiny random DiT (2 blocks, learned sigma).
final class DiTGradientTests: XCTestCase {
    func testInputGradientMatchesFiniteDifferences() {
        var c = DiTTransformer2DConfig()
        c.numAttentionHeads = 2; c.attentionHeadDim = 4; c.numLayers = 2; c.inChannels = 2; c.outChannels = 4
        c.sampleSize = 4; c.patchSize = 2; c.numEmbedsAdaNorm = 3
        let model = DiTTransformer2DModel(config: c, seed: 5)
        var g = RandomGenerator(seed: 11)
        let sample = Tensor.randn([2, 2, 4, 4], generator: &g)
        let r = Tensor.randn([2, 2, 4, 4], generator: &g)
        let labels = Tensor(shape: [2], [1, 3])  // a class and the null class
        let ts: [Float] = [17, 803]
        func loss(_ x: Tensor) -> Double {
            let out = Autograd.noGrad { model.predict(x, timesteps: ts, conditions: labels) }
            var total = 0.0
            let po = out.scalars, pr = r.scalars
            for i in 0..<out.count { total += Double(po[i]) * Double(pr[i]) }
            return total
        }
        let x = Tensor(shape: sample.shape, sample.scalars, requiresGrad: true)
        (model.predict(x, timesteps: ts, conditions: labels) * r).sum().backward()
        let analytic = x.grad!.scalars
        let delta: Float = 1e-2
        var numeric = [Double](repeating: 0, count: sample.count)
        for i in 0..<sample.count {
            let plus = Tensor(shape: sample.shape, sample.scalars), minus = Tensor(shape: sample.shape, sample.scalars)
            plus.withMutableHostBuffer { $0[i] += delta }
            minus.withMutableHostBuffer { $0[i] -= delta }
            numeric[i] = (loss(plus) - loss(minus)) / Double(2 * delta)
        }
        let scale = numeric.map(abs).max()!
        XCTAssertGreaterThan(scale, 1e-3, "a gradient that is not trivially zero")
        for i in 0..<sample.count {
            XCTAssertEqual(Double(analytic[i]), numeric[i], accuracy: 2e-3 + 1e-2 * scale, "element \(i)")
        }
    }
}

/// The 2-D sinusoidal positions on a grid small enough to write out.
final class DiTPositionTableTests: XCTestCase {
    func testTableOfATwoByThreeGrid() {
        // embedDim 8: quarter 2, frequencies 1 and 1/100. Token (row i, column j) = [sin(j w), cos(j w), sin(i w), cos(i w)].
        let t = sinusoidalPositionTable(embedDim: 8, height: 2, width: 3, baseSize: 2)
        XCTAssertEqual(t.shape, [1, 6, 8])
        func expected(_ i: Int, _ j: Int) -> [Float] {
            // Positions: index / (size / base): rows 2/2 -> i, columns 3/2 -> j / 1.5.
            let col = Double(Float(j) / Float(1.5)), row = Double(i)
            let w = [1.0, 0.01]
            return [sin(col * w[0]), sin(col * w[1]), cos(col * w[0]), cos(col * w[1]),
                    sin(row * w[0]), sin(row * w[1]), cos(row * w[0]), cos(row * w[1])].map { Float($0) }
        }
        for i in 0..<2 {
            for j in 0..<3 {
                let row = Array(t.scalars[((i * 3 + j) * 8)..<((i * 3 + j) * 8 + 8)])
                XCTAssertEqual(row, expected(i, j), "token (\(i), \(j))")
            }
        }
    }
}

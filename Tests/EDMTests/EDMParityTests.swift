import EDM
import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// Fixtures written by tools/make_edm_fixtures.py from NVlabs/edm's own code.
func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
}

/// max |a - b| / max |b|.
func maxRelativeError(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape, "shapes \(a.shape) and \(b.shape)")
    var diff = 0.0, ref = 0.0
    let pa = a.scalars, pb = b.scalars
    for i in 0..<a.count {
        diff = Swift.max(diff, Swift.abs(Double(pa[i]) - Double(pb[i])))
        ref = Swift.max(ref, Swift.abs(Double(pb[i])))
    }
    return diff / Swift.max(ref, 1e-30)
}

/// Parity with EDM's precond modules and networks: D(x; sigma, class) within 1e-4 relative
/// (max abs difference / max abs reference), gradients within 1e-3.
final class EDMParityTests: XCTestCase {
    struct IO {
        let file: SafetensorsFile
        let x: Tensor, sigma: [Float], labels: Tensor?, augment: Tensor?, output: Tensor, projection: Tensor, gradX: Tensor

        init(_ name: String) throws {
            file = try SafetensorsFile(url: fixtureURL(name).appendingPathComponent("io.safetensors"))
            x = try file.tensor("x")
            sigma = try file.tensor("sigma").scalars
            labels = file.contains("class_labels") ? try file.tensor("class_labels") : nil
            augment = file.contains("augment_labels") ? try file.tensor("augment_labels") : nil
            output = try file.tensor("output")
            projection = try file.tensor("projection")
            gradX = try file.tensor("grad_x")
        }
    }

    /// Forward, input gradient and parameter gradients of `model` on fixture `name`'s inputs;
    /// returns the forward and input-gradient errors.
    @discardableResult
    func checkParity(_ name: String, model given: EDMModel? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> (Double, Double) {
        let model = try given ?? EDMModel.load(from: fixtureURL(name))
        let io = try IO(name)
        let x = Tensor(shape: io.x.shape, storage: io.x.storage, requiresGrad: true)
        let out = model(x, sigma: io.sigma, classLabels: io.labels, augmentLabels: io.augment)
        let forward = maxRelativeError(out, io.output)
        XCTAssertLessThan(forward, 1e-4, "\(name) D(x; sigma, class)", file: file, line: line)
        (out * io.projection).sum().backward()
        let gradient = maxRelativeError(x.grad!, io.gradX)
        XCTAssertLessThan(gradient, 1e-3, "\(name) dD/dx", file: file, line: line)
        let params = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.key, $0.tensor) })
        for key in io.file.names where key.hasPrefix("grad.") {
            let pname = String(key.dropFirst(5))
            guard let g = params[pname]?.grad else { XCTFail("\(name): no gradient for \(pname)", file: file, line: line); continue }
            XCTAssertLessThan(maxRelativeError(g, try io.file.tensor(key)), 1e-3, "\(name) d/d \(pname)", file: file, line: line)
        }
        if io.file.contains("output_uncond") {
            let uncond = Autograd.noGrad { model(io.x, sigma: io.sigma, classLabels: nil, augmentLabels: io.augment) }
            XCTAssertLessThan(maxRelativeError(uncond, try io.file.tensor("output_uncond")), 1e-4,
                              "\(name) D with class_labels None (zero label vector)", file: file, line: line)
        }
        return (forward, gradient)
    }

    func testDDPMppInEDMPrecondMatchesEDM() throws { try checkParity("ddpmpp_edm") }

    func testNCSNppInVEPrecondMatchesEDM() throws { try checkParity("ncsnpp_ve") }

    func testSkipEncoderInVPPrecondMatchesEDM() throws { try checkParity("skip_vp") }

    func testDhariwalUNetInEDMPrecondMatchesEDM() throws { try checkParity("adm_edm") }

    // The same parity with every op on the reference backend (plain loops).
    func testAllNetworksMatchEDMOnReferenceBackend() throws {
        try Engine.withBackend(.reference) {
            for name in ["ddpmpp_edm", "ncsnpp_ve", "skip_vp", "adm_edm"] { try checkParity(name) }
        }
    }

    /// The parity check is not vacuous: one preconditioning constant off breaks it.
    func testChangedPreconditioningConstantFailsTheComparison() throws {
        for (name, change) in [("ddpmpp_edm", { (c: inout EDMConfig) in c.sigmaData = 0.51 }),
                               ("skip_vp", { (c: inout EDMConfig) in c.betaMin = 0.11 }),
                               ("skip_vp", { (c: inout EDMConfig) in c.M = 999 })] {
            let reference = try EDMModel.load(from: fixtureURL(name))
            var config = reference.config
            change(&config)
            let changed = EDMModel(config: config)
            try changed.loadWeights(from: try SafetensorsFile(url: fixtureURL(name).appendingPathComponent(EDMModel.weightsName)))
            let io = try IO(name)
            let out = Autograd.noGrad { changed(io.x, sigma: io.sigma, classLabels: io.labels, augmentLabels: io.augment) }
            XCTAssertGreaterThan(maxRelativeError(out, io.output), 1e-3, "\(name): a changed constant must be detected")
        }
    }

    /// Single layers the small networks do not exercise: adaptive-scale blocks with two attention
    /// heads, down-sampling with [1,3,3,1] and up-sampling with [1,1] (resampling-only skip), and
    /// EDM's Conv2d with fused and unfused resampling.
    func testLayersMatchEDM() throws {
        let file = try SafetensorsFile(url: fixtureURL("layers.safetensors"))
        var g = RandomGenerator(seed: 1)
        func check(_ name: String, _ module: Module, _ forward: (Tensor) -> Tensor) throws {
            var state: [String: Tensor] = [:]
            for key in file.names where key.hasPrefix(name + ".") {
                let rest = String(key.dropFirst(name.count + 1))
                if !["x", "emb", "output", "projection", "grad_x"].contains(rest) { state[rest] = try file.tensor(key) }
            }
            try module.loadEDMState(state, source: name)
            let x0 = try file.tensor(name + ".x")
            let x = Tensor(shape: x0.shape, storage: x0.storage, requiresGrad: true)
            let out = forward(x)
            XCTAssertLessThan(maxRelativeError(out, try file.tensor(name + ".output")), 1e-4, name)
            (out * (try file.tensor(name + ".projection"))).sum().backward()
            XCTAssertLessThan(maxRelativeError(x.grad!, try file.tensor(name + ".grad_x")), 1e-3, "\(name) d/dx")
        }
        var down = EDMUNetBlock.Options()
        down.down = true; down.attention = true; down.numHeads = 2; down.resampleFilter = [1, 3, 3, 1]; down.skipScale = 0.8
        let blockDown = EDMUNetBlock(in: 8, out: 16, emb: 12, options: down, generator: &g)
        XCTAssertEqual(blockDown.numHeads, 2)
        try check("block_down", blockDown) { blockDown($0, try! file.tensor("block_down.emb")) }
        var up = EDMUNetBlock.Options()
        up.up = true; up.attention = true; up.channelsPerHead = 8
        let blockUp = EDMUNetBlock(in: 16, out: 16, emb: 12, options: up, generator: &g)
        XCTAssertEqual(blockUp.numHeads, 2)
        try check("block_up", blockUp) { blockUp($0, try! file.tensor("block_up.emb")) }
        let init0 = EDMInit(.kaimingNormal)
        let convs: [(String, EDMConv2d)] = [
            ("conv_fused_up", EDMConv2d(6, 5, kernel: 3, up: true, resampleFilter: [1, 3, 3, 1], fusedResample: true, init: init0, generator: &g)),
            ("conv_fused_up_1x1", EDMConv2d(6, 5, kernel: 1, up: true, resampleFilter: [1, 3, 3, 1], fusedResample: true, init: init0, generator: &g)),
            ("conv_fused_down", EDMConv2d(6, 5, kernel: 3, down: true, resampleFilter: [1, 1], fusedResample: true, init: init0, generator: &g)),
            ("conv_down", EDMConv2d(6, 5, kernel: 3, down: true, resampleFilter: [1, 3, 3, 1], init: init0, generator: &g)),
            ("conv_up", EDMConv2d(6, 5, kernel: 3, up: true, resampleFilter: [1, 3, 3, 1], init: init0, generator: &g)),
        ]
        for (name, conv) in convs { try check(name, conv) { conv($0) } }
    }

    /// The resampling filters are buffers read from the checkpoint, not recomputed.
    func testResampleFilterBufferComesFromTheCheckpoint() throws {
        let folder = fixtureURL("ncsnpp_ve")
        let model = try EDMModel.load(from: folder)
        let io = try IO("ncsnpp_ve")
        var state = try SafetensorsFile(url: folder.appendingPathComponent(EDMModel.weightsName)).tensors()
        let key = "model.enc.8x8_aux_residual.resample_filter"
        XCTAssertEqual(state[key]?.shape, [1, 1, 4, 4])
        XCTAssertEqual(state[key]!.scalars[5], 9.0 / 64, accuracy: 1e-7)
        state[key] = Tensor(shape: [1, 1, 4, 4], [Float](repeating: 1.0 / 16, count: 16))
        try model.loadEDMState(state)
        let out = Autograd.noGrad { model(io.x, sigma: io.sigma) }
        XCTAssertGreaterThan(maxRelativeError(out, io.output), 1e-4)
    }

    func testSaveThenLoadRoundTrips() throws {
        for name in ["ddpmpp_edm", "skip_vp", "ncsnpp_ve", "adm_edm"] {
            let model = try EDMModel.load(from: fixtureURL(name))
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edm-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            try model.save(to: dir)
            let again = try EDMModel.load(from: dir)
            XCTAssertEqual(again.config, model.config, name)
            let original = try SafetensorsFile(url: fixtureURL(name).appendingPathComponent(EDMModel.weightsName))
            let written = try SafetensorsFile(url: dir.appendingPathComponent(EDMModel.weightsName))
            XCTAssertEqual(Set(written.names), Set(original.names), "\(name): saved keys are the state_dict keys")
            for key in original.names { XCTAssertEqual(try written.tensor(key).scalars, try original.tensor(key).scalars, key) }
            try checkParity(name, model: again)
        }
    }

    func testStrictLoadingNamesMissingUnusedAndMisshapenTensors() throws {
        let folder = fixtureURL("ddpmpp_edm")
        let tensors = try SafetensorsFile(url: folder.appendingPathComponent(EDMModel.weightsName)).tensors()
        let model = EDMModel(config: try EDMConfig.load(folder.appendingPathComponent("config.json")))
        func expect(_ broken: [String: Tensor], _ words: [String]) {
            XCTAssertThrowsError(try model.loadEDMState(broken, source: "w.safetensors")) { e in
                let text = "\(e)"
                for w in words + ["w.safetensors"] { XCTAssertTrue(text.contains(w), "'\(w)' not in: \(text)") }
            }
        }
        var broken = tensors
        broken.removeValue(forKey: "model.map_label.weight")
        expect(broken, ["missing", "model.map_label.weight"])
        broken = tensors
        broken.removeValue(forKey: "model.enc.8x8_down.conv0.resample_filter")
        expect(broken, ["missing", "model.enc.8x8_down.conv0.resample_filter"])
        broken = tensors
        broken["model.enc.4x4_block9.extra"] = Tensor.zeros([1])
        expect(broken, ["unused", "model.enc.4x4_block9.extra"])
        broken = tensors
        broken["model.enc.16x16_conv.weight"] = Tensor.zeros([8, 3, 3, 2])
        expect(broken, ["model.enc.16x16_conv.weight", "[8, 3, 3, 2]", "[8, 3, 3, 3]"])
        XCTAssertNoThrow(try model.loadEDMState(tensors))
    }

    func testBadConfigFieldsAreNamedWithTheFile() throws {
        let base = try String(contentsOf: fixtureURL("ddpmpp_edm").appendingPathComponent("config.json"), encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(base.utf8)) as! [String: Any]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edmcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("config.json")
        func expect(_ edit: (inout [String: Any]) -> Void, _ words: [String], line: UInt = #line) throws {
            var o = object
            edit(&o)
            try JSONSerialization.data(withJSONObject: o).write(to: url)
            XCTAssertThrowsError(try EDMConfig.load(url), line: line) { e in
                let text = "\(e)"
                for w in words + [url.path] { XCTAssertTrue(text.contains(w), "'\(w)' not in: \(text)", line: line) }
            }
        }
        try expect({ $0["encoder_type"] = "bogus" }, ["encoder_type", "bogus"])
        try expect({ $0["precond"] = "iddpm" }, ["precond", "iddpm"])
        try expect({ $0["model_type"] = "UNet2DModel" }, ["model_type"])
        try expect({ $0["sigma_data"] = -1 }, ["sigma_data"])
        try expect({ $0["sigma_data"] = "half" }, ["sigma_data", "a number"])
        try expect({ $0["beta_d"] = 19.9 }, ["beta_d", "not an option"])
        try expect({ $0["colour"] = 1 }, ["colour", "unknown key"])
        try expect({ $0.removeValue(forKey: "img_resolution") }, ["img_resolution", "missing"])
        try expect({ $0["img_resolution"] = 15 }, ["img_resolution", "halve"])
        try expect({ $0["model_channels"] = 6 }, ["model_channels", "group norm"])
        try expect({ $0["channel_mult"] = [Int]() }, ["channel_mult"])
        // DhariwalUNet takes no SongUNet options; VPPrecond derives sigma_min.
        try expect({ $0["model_type"] = "DhariwalUNet" }, ["channel_mult_noise", "not an option of DhariwalUNet"])
        try expect({ $0["precond"] = "vp"; $0.removeValue(forKey: "sigma_data"); $0["sigma_min"] = 0.002; $0["sigma_max"] = 80 },
                   ["sigma_min", "disagrees"])
        // A folder without the weights.
        var o = object
        o["label_dim"] = 4
        try JSONSerialization.data(withJSONObject: o).write(to: url)
        XCTAssertThrowsError(try EDMModel.load(from: dir)) { e in XCTAssertTrue("\(e)".contains("model.safetensors"), "\(e)") }
    }

    func testConfigRoundTripsAndPresets() throws {
        for precond in EDMConfig.Precond.allCases {
            for type in EDMConfig.ModelType.allCases {
                let c = EDMConfig(precond: precond, modelType: type, imgResolution: 64, imgChannels: 3, labelDim: 10)
                let data = try JSONEncoder().encode(c)
                XCTAssertEqual(try JSONDecoder().decode(EDMConfig.self, from: data), c, "\(precond) \(type)")
            }
        }
        let vp = EDMConfig(precond: .vp, modelType: .songUNet, imgResolution: 32, imgChannels: 3)
        // EDM's VPPrecond: sigma_min 0.0009765625 (float32 cancellation in exp(...) - 1 at t = 1e-5),
        // sigma_max 152.16697692871094.
        XCTAssertEqual(vp.preconditioning.sigmaMin, 0.0009765625)
        XCTAssertEqual(vp.preconditioning.sigmaMax, 152.16697692871094, accuracy: 1e-9)
        XCTAssertEqual(EDMConfig(precond: .edm, modelType: .songUNet, imgResolution: 8, imgChannels: 1).preconditioning.sigmaMax, .infinity)
        // RDC's network: EDM's CIFAR-10 conditional DDPM++ (55,735,299 parameters in EDM, 427 state-dict tensors).
        let cifar = EDMModel(config: .cifar10(conditional: true, architecture: .ddpmpp))
        XCTAssertEqual(cifar.parameterCount, 55_735_299)
        XCTAssertEqual(cifar.edmStateDict().count, 427)
        XCTAssertNotNil(cifar.edmStateDict()["model.map_label.weight"])
        XCTAssertEqual(cifar.edmStateDict()["model.enc.32x32_conv.weight"]?.shape, [128, 3, 3, 3])
    }
}

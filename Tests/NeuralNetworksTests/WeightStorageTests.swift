import Foundation
import NeuralNetworks
import TensorEngine
import XCTest

/// 16-bit weight storage: Linear, Conv2d and Embedding keep F16/BF16 weights and compute in
/// Float32; results equal a Float32 layer whose weights were rounded first; bytes shrink;
/// safetensors loading copies 16-bit tensors bit for bit.
final class WeightStorageTests: XCTestCase {
    final class Net: Module {
        let embed: Embedding, conv: Conv2d, linear: Linear, norm: LayerNorm
        init(seed: UInt64 = 5) {
            var g = RandomGenerator(seed: seed)
            embed = Embedding(10, 6, generator: &g)
            conv = Conv2d(2, 3, kernelSize: 3, padding: 1, generator: &g)
            linear = Linear(6, 4, generator: &g)
            norm = LayerNorm(4)
            super.init()
            child("embed", embed)
            child("conv", conv)
            child("linear", linear)
            child("norm", norm)
        }

        func callAsFunction(_ ids: Tensor, _ image: Tensor) -> (Tensor, Tensor) {
            (norm(linear(embed(ids))), conv(image))
        }
    }

    /// A Float32 net whose storable weights hold `format`-rounded values: what 16-bit storage
    /// must compute exactly.
    func roundedReference(_ format: HalfFormat) -> Net {
        let net = Net()
        for (_, p) in net.allParameters() where p.storable {
            p.assign(HalfTensor(rounding: p.value, to: format).float())
        }
        return net
    }

    let ids = Tensor(shape: [2, 3], [1, 9, 0, 4, 4, 7])
    var image: Tensor { var g = RandomGenerator(seed: 9); return Tensor.randn([2, 2, 5, 5], generator: &g) }

    func testSixteenBitStorageEqualsRoundedFloat32AndHalvesWeightBytes() {
        let full = Net()
        let weights = 10 * 6 + 3 * 2 * 9 + 4 * 6, others = 3 + 4 + 4 + 4
        XCTAssertEqual(full.parameterByteCount, 4 * (weights + others))
        for storage in [WeightStorage.float16, .bfloat16] {
            let net = WeightStorage.$current.withValue(storage) { Net() }
            XCTAssertEqual(net.parameterCount, weights + others)
            XCTAssertEqual(net.parameterByteCount, 2 * weights + 4 * others, "\(storage)")
            XCTAssertTrue(net.hasHalfPrecisionWeights)
            // Only Float32 parameters are trainable ones.
            XCTAssertEqual(net.namedParameters().map(\.key), ["conv.bias", "linear.bias", "norm.weight", "norm.bias"])
            XCTAssertEqual(net.allParameters().count, 7)
            let reference = roundedReference(storage.halfFormat!)
            let (a, b) = Autograd.noGrad { net(ids, image) }
            let (ra, rb) = Autograd.noGrad { reference(ids, image) }
            XCTAssertEqual(a.scalars, ra.scalars, "\(storage): identical, the same Float32 kernels on the same values")
            XCTAssertEqual(b.scalars, rb.scalars, "\(storage)")
            // Converting a built Float32 net gives the same as building it 16-bit.
            let converted = Net()
            converted.storeWeights(as: storage)
            XCTAssertEqual(converted.parameterByteCount, net.parameterByteCount)
            XCTAssertEqual(Autograd.noGrad { converted(ids, image) }.0.scalars, a.scalars)
        }
    }

    /// Gradients still reach the inputs through 16-bit weights (the weights get none).
    func testGradientsFlowToInputsThroughSixteenBitWeights() {
        let net = WeightStorage.$current.withValue(.float16) { Net() }
        let reference = roundedReference(.float16)
        let x = image, xr = image
        x.requiresGrad = true
        xr.requiresGrad = true
        net.conv(x).square().sum().backward()
        reference.conv(xr).square().sum().backward()
        XCTAssertEqual(x.grad!.scalars, xr.grad!.scalars)
        XCTAssertNil(net.conv.weightParameter.tensor)
    }

    /// Loading a file: F16 tensors go into F16 storage bit for bit (values not representable in
    /// F16 cannot be in the file, so nothing is rounded), BF16 likewise; an F32 file is rounded.
    func testLoadingSafetensorsIntoSixteenBitStorage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wstorage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = Net(seed: 11)
        for (dtype, format) in [(SafetensorsWriteDType.f16, HalfFormat.float16), (.bf16, .bfloat16)] {
            let url = dir.appendingPathComponent("\(format).safetensors")
            try Safetensors.write(source.stateDict(), to: url, dtype: dtype)
            let file = try SafetensorsFile(url: url)
            let storage: WeightStorage = format == .float16 ? .float16 : .bfloat16
            let net = WeightStorage.$current.withValue(storage) { Net() }
            try net.load(from: file)
            let full = Net()
            try full.load(from: file)
            for (key, p) in net.allParameters() {
                let expected = try file.tensor(key)
                XCTAssertEqual(p.value.scalars, expected.scalars, key)
                if let half = p.half {
                    XCTAssertEqual(half.format, format)
                    let raw = try file.rawData(key)
                    let bits = raw.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
                    XCTAssertEqual(half.bitPatterns, bits.map { UInt16(littleEndian: $0) }, key)
                }
            }
            XCTAssertEqual(Autograd.noGrad { net(ids, image) }.0.scalars, Autograd.noGrad { full(ids, image) }.0.scalars)
        }
        // F32 file into F16 storage: rounded to nearest even.
        let url = dir.appendingPathComponent("f32.safetensors")
        try Safetensors.write(source.stateDict(), to: url)
        let net = WeightStorage.$current.withValue(.float16) { Net() }
        try net.load(from: try SafetensorsFile(url: url))
        XCTAssertEqual(net.linear.weight.scalars, HalfTensor(rounding: source.linear.weight, to: .float16).float().scalars)
        // Strictness as load(_:): a missing tensor is named with the file.
        var state = source.stateDict()
        state.removeValue(forKey: "conv.weight")
        try Safetensors.write(state, to: url)
        XCTAssertThrowsError(try net.load(from: try SafetensorsFile(url: url))) {
            XCTAssertTrue("\($0)".contains("conv.weight") && "\($0)".contains("f32.safetensors"), "\($0)")
        }
    }
}

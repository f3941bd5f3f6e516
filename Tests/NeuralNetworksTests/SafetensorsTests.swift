import Foundation
@testable import NeuralNetworks
import TensorEngine
import XCTest

final class SafetensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("safetensors-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: helpers

    private func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// 8-byte little-endian length, the header text, then the data.
    private func fileBytes(header: String, data: [UInt8] = [], headerLength: UInt64? = nil) -> [UInt8] {
        fileBytes(headerBytes: Array(header.utf8), data: data, headerLength: headerLength)
    }

    private func fileBytes(headerBytes: [UInt8], data: [UInt8] = [], headerLength: UInt64? = nil) -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: (headerLength ?? UInt64(headerBytes.count)).littleEndian) { out.append(contentsOf: $0) }
        return out + headerBytes + data
    }

    @discardableResult
    private func save(_ bytes: [UInt8], as name: String) throws -> URL {
        let u = url(name)
        try Data(bytes).write(to: u)
        return u
    }

    private func bytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        var out: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    private func floatBytes(_ values: [Float]) -> [UInt8] { bytes(values.map { $0.bitPattern }) }

    /// Opens a crafted file and asserts it fails with the expected case and a message naming it.
    private func assertRejects(_ bytes: [UInt8], name: String, file: StaticString = #filePath, line: UInt = #line,
                               _ matches: (SafetensorsError) -> Bool) throws {
        let u = try save(bytes, as: name)
        do {
            let opened = try SafetensorsFile(url: u)
            XCTFail("\(name) was accepted: \(opened.names)", file: file, line: line)
        } catch let error as SafetensorsError {
            XCTAssertTrue(matches(error), "unexpected error: \(error)", file: file, line: line)
            XCTAssertTrue(error.description.contains(name), "message lacks file name: \(error)", file: file, line: line)
            XCTAssertTrue(error.localizedDescription.contains(name), file: file, line: line)
            XCTAssertEqual(error.path, u.path, file: file, line: line)
        }
    }

    // MARK: round trips

    func testRoundTripF32MultipleTensors() throws {
        let a = Tensor(shape: [2, 3], [1, -2, 3.5, 0, 1e-30, -7e20])
        let b = Tensor(shape: [4], [0.1, 0.2, 0.3, 0.4])
        let c = Tensor(shape: [1, 1, 2, 1], [Float.infinity, -Float.greatestFiniteMagnitude])
        let u = url("multi.safetensors")
        try Safetensors.write(["conv.weight": a, "b": b, "z.last": c], metadata: ["format": "pt"], to: u)

        let file = try SafetensorsFile(url: u)
        XCTAssertEqual(file.names, ["b", "conv.weight", "z.last"])
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(file.headerLength % 8, 0)
        for (name, t) in [("conv.weight", a), ("b", b), ("z.last", c)] {
            let r = try file.tensor(name)
            XCTAssertEqual(r.shape, t.shape)
            XCTAssertEqual(r.scalars.map(\.bitPattern), t.scalars.map(\.bitPattern))
            XCTAssertEqual(try file.info(name).dtype, .f32)
        }
        // Data in sorted-name order, contiguous from 0.
        XCTAssertEqual(try file.info("b").dataOffsets, 0..<16)
        XCTAssertEqual(try file.info("conv.weight").dataOffsets, 16..<40)
        XCTAssertEqual(try file.info("z.last").dataOffsets, 40..<48)
        XCTAssertTrue(file.contains("b"))
        XCTAssertFalse(file.contains("missing"))
        XCTAssertEqual(try file.tensors().count, 3)
    }

    func testRoundTripF16() throws {
        var rng = SplitMix(7)
        let values = (0..<1000).map { _ in Float(rng.uniform() * 200 - 100) } + [0, -0.0, 1, 65504, 6e-5, 1e-7]
        let t = Tensor(shape: [values.count], values)
        let u = url("half.safetensors")
        try Safetensors.write(["x": t], to: u, dtype: .f16)
        let file = try SafetensorsFile(url: u)
        XCTAssertEqual(try file.info("x").dtype, .f16)
        XCTAssertEqual(try file.info("x").byteCount, values.count * 2)
        let r = try file.tensor("x").scalars
        for (x, y) in zip(values, r) {
            XCTAssertEqual(y, x, accuracy: abs(x) * 0x1p-11 + 0x1p-25, "\(x)")
        }
    }

    func testRoundTripBF16() throws {
        var rng = SplitMix(8)
        let values = (0..<1000).map { _ in Float(rng.uniform() * 2e6 - 1e6) } + [0, 1, -3, 1e38, 1e-38]
        let t = Tensor(shape: [5, values.count / 5], values)
        let u = url("bf16.safetensors")
        try Safetensors.write(["x": t], metadata: ["k": "v"], to: u, dtype: .bf16)
        let file = try SafetensorsFile(url: u)
        XCTAssertEqual(try file.info("x").dtype, .bf16)
        let r = try file.tensor("x")
        XCTAssertEqual(r.shape, t.shape)
        for (x, y) in zip(values, r.scalars) {
            XCTAssertEqual(y, x, accuracy: abs(x) * 0x1p-8, "\(x)")
        }
    }

    func testScalarAndZeroSizedTensors() throws {
        let u = url("edge.safetensors")
        try Safetensors.write(["scalar": Tensor(3.25), "empty": Tensor.zeros([0, 3]), "empty2": Tensor.zeros([2, 0])],
                              to: u, dtype: .f16)
        let file = try SafetensorsFile(url: u)
        let s = try file.tensor("scalar")
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(s.item, 3.25)
        XCTAssertEqual(try file.tensor("empty").shape, [0, 3])
        XCTAssertEqual(try file.tensor("empty2").shape, [2, 0])
        XCTAssertEqual(try file.info("empty").dataOffsets, 0..<0)
        XCTAssertEqual(try file.info("scalar").dataOffsets, 0..<2)
    }

    func testNoTensorsAndMetadataOnly() throws {
        let u = url("nothing.safetensors")
        try Safetensors.write([:], to: u)
        let file = try SafetensorsFile(url: u)
        XCTAssertEqual(file.names, [])
        XCTAssertEqual(file.metadata, [:])
        let data = try Data(contentsOf: u)
        XCTAssertEqual(Array(data), fileBytes(header: "{}      "))

        try Safetensors.write([:], metadata: ["a": "1"], to: u)
        XCTAssertEqual(try SafetensorsFile(url: u).metadata, ["a": "1"])
    }

    func testMetadataAndNamesWithSpecialCharacters() throws {
        let metadata = ["quote\"": "back\\slash", "newline": "a\nb\tc\u{1}", "unicode": "héllo → 日本 🎉", "": ""]
        let names = ["layer.0/weight \"q\"", "é", "🎉", "tab\t"]
        var tensors: [String: Tensor] = [:]
        for (i, n) in names.enumerated() { tensors[n] = Tensor(shape: [1], [Float(i)]) }
        let u = url("special.safetensors")
        try Safetensors.write(tensors, metadata: metadata, to: u)
        let file = try SafetensorsFile(url: u)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(Set(file.names), Set(names))
        for (i, n) in names.enumerated() { XCTAssertEqual(try file.tensor(n).item, Float(i)) }
    }

    /// The header is byte-for-byte what the official writer produces for one dtype.
    func testWrittenLayoutMatchesOfficialWriter() throws {
        let data = try Safetensors.encode(["b": Tensor(shape: [2], [1, 2]), "a": Tensor(shape: [1, 1], [3])],
                                          metadata: ["format": "pt"])
        let json = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        var padded = json
        while padded.utf8.count % 8 != 0 { padded += " " }
        XCTAssertEqual(Array(data), fileBytes(header: padded, data: floatBytes([3, 1, 2])))
        // `write` produces the same bytes.
        let u = url("layout.safetensors")
        try Safetensors.write(["b": Tensor(shape: [2], [1, 2]), "a": Tensor(shape: [1, 1], [3])],
                              metadata: ["format": "pt"], to: u)
        XCTAssertEqual(try Data(contentsOf: u), data)
        // And in-memory reading agrees.
        let file = try SafetensorsFile(data: data, url: URL(fileURLWithPath: "mem.safetensors"))
        XCTAssertEqual(try file.tensor("b").scalars, [1, 2])
    }

    func testAtomicWriteReplacesAndCleansUp() throws {
        let u = url("atomic.safetensors")
        try Safetensors.write(["x": Tensor(shape: [1], [1])], to: u)
        try Safetensors.write(["y": Tensor(shape: [2], [5, 6])], to: u)
        XCTAssertEqual(try SafetensorsFile(url: u).names, ["y"])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        XCTAssertEqual(leftovers, ["atomic.safetensors"])

        // A failed write throws, names the path, and leaves the old file alone.
        XCTAssertThrowsError(try Safetensors.write(["__metadata__": Tensor(shape: [1], [1])], to: u)) { error in
            guard case .invalidTensorName(_, "__metadata__")? = error as? SafetensorsError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue("\(error)".contains("atomic.safetensors"))
        }
        XCTAssertEqual(try SafetensorsFile(url: u).names, ["y"])
        let bad = directory.appendingPathComponent("no-such-dir/out.safetensors")
        XCTAssertThrowsError(try Safetensors.write(["x": Tensor(shape: [1], [1])], to: bad)) { error in
            guard case .writeFailed? = error as? SafetensorsError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("out.safetensors"))
        }
    }

    // MARK: half-precision conversions

    func testHalfConversionEdgeCases() {
        typealias H = HalfPrecision
        XCTAssertEqual(H.float(fromFloat16Bits: 0x3C00), 1)
        XCTAssertEqual(H.float(fromFloat16Bits: 0xC000), -2)
        XCTAssertEqual(H.float(fromFloat16Bits: 0x7BFF), 65504)
        XCTAssertEqual(H.float(fromFloat16Bits: 0x0001), 0x1p-24)
        XCTAssertEqual(H.float(fromFloat16Bits: 0x03FF), 0x1p-14 - 0x1p-24)
        XCTAssertEqual(H.float(fromFloat16Bits: 0x0400), 0x1p-14)
        XCTAssertEqual(H.float(fromFloat16Bits: 0x7C00), .infinity)
        XCTAssertEqual(H.float(fromFloat16Bits: 0xFC00), -.infinity)
        XCTAssertTrue(H.float(fromFloat16Bits: 0x7E00).isNaN)
        XCTAssertEqual(H.float(fromFloat16Bits: 0x8000).bitPattern, (-0.0 as Float).bitPattern)

        XCTAssertEqual(H.float16Bits(from: 1), 0x3C00)
        XCTAssertEqual(H.float16Bits(from: 1 + 0x1p-11), 0x3C00)          // tie -> even
        XCTAssertEqual(H.float16Bits(from: 1 + 3 * 0x1p-11), 0x3C02)      // tie -> even (up)
        XCTAssertEqual(H.float16Bits(from: 65504), 0x7BFF)
        XCTAssertEqual(H.float16Bits(from: 65519), 0x7BFF)
        XCTAssertEqual(H.float16Bits(from: 65520), 0x7C00)                // rounds to infinity
        XCTAssertEqual(H.float16Bits(from: 1e10), 0x7C00)
        XCTAssertEqual(H.float16Bits(from: -.infinity), 0xFC00)
        XCTAssertEqual(H.float16Bits(from: .nan) & 0x7E00, 0x7E00)
        XCTAssertEqual(H.float16Bits(from: 0x1p-24), 0x0001)
        XCTAssertEqual(H.float16Bits(from: 0x1p-25), 0x0000)              // tie -> even (zero)
        XCTAssertEqual(H.float16Bits(from: 0x1p-25 * 3), 0x0002)          // tie -> even (up)
        XCTAssertEqual(H.float16Bits(from: -0.0), 0x8000)
        XCTAssertEqual(H.float16Bits(from: 1e-30), 0x0000)

        XCTAssertEqual(H.float(fromBFloat16Bits: 0x3F80), 1)
        XCTAssertEqual(H.float(fromBFloat16Bits: 0xC040), -3)
        XCTAssertEqual(H.bfloat16Bits(from: 1), 0x3F80)
        XCTAssertEqual(H.bfloat16Bits(from: 1 + 0x1p-8), 0x3F80)          // tie -> even
        XCTAssertEqual(H.bfloat16Bits(from: 1 + 3 * 0x1p-8), 0x3F82)      // tie -> even (up)
        XCTAssertEqual(H.bfloat16Bits(from: 1 + 0x1p-8 + 0x1p-20), 0x3F81)
        XCTAssertEqual(H.bfloat16Bits(from: .greatestFiniteMagnitude), 0x7F80) // rounds to infinity
        XCTAssertEqual(H.bfloat16Bits(from: .infinity), 0x7F80)
        XCTAssertTrue(H.float(fromBFloat16Bits: H.bfloat16Bits(from: .nan)).isNaN)
        XCTAssertTrue(H.float(fromBFloat16Bits: H.bfloat16Bits(from: Float(bitPattern: 0x7F80_0001))).isNaN)
    }

    func testEveryHalfBitPatternRoundTrips() {
        for bits in 0...UInt16.max {
            let f = HalfPrecision.float(fromFloat16Bits: bits)
            if f.isNaN { continue }
            XCTAssertEqual(HalfPrecision.float16Bits(from: f), bits)
            #if !(os(macOS) && arch(x86_64))
            XCTAssertEqual(f.bitPattern, Float(Float16(bitPattern: bits)).bitPattern)
            #endif
            XCTAssertEqual(HalfPrecision.bfloat16Bits(from: HalfPrecision.float(fromBFloat16Bits: bits)),
                           HalfPrecision.float(fromBFloat16Bits: bits).isNaN ? bits | 0x40 : bits)
        }
    }

    #if !(os(macOS) && arch(x86_64))
    func testFloatToHalfMatchesNativeRounding() {
        var rng = SplitMix(3)
        for _ in 0..<200_000 {
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            if x.isNaN { continue }
            XCTAssertEqual(HalfPrecision.float16Bits(from: x), Float16(x).bitPattern, "\(x)")
        }
    }
    #endif

    // MARK: hand-crafted files, one per dtype

    func testReadsEveryConvertibleDType() throws {
        struct Case { let dtype: String; let data: [UInt8]; let expected: [Float] }
        let cases = [
            Case(dtype: "F32", data: floatBytes([1.5, -2, 0x1p-133]), expected: [1.5, -2, 0x1p-133]),
            Case(dtype: "F16", data: bytes([UInt16(0x3C00), 0xC000, 0x3555]), expected: [1, -2, 0.333251953125]),
            Case(dtype: "BF16", data: bytes([UInt16(0x3F80), 0xC040, 0x4049]), expected: [1, -3, 3.140625]),
            Case(dtype: "F64", data: bytes([(0.5 as Double).bitPattern, (-1e300 as Double).bitPattern, (1.0 / 3).bitPattern]),
                 expected: [0.5, -.infinity, Float(1.0 / 3)]),
            Case(dtype: "I64", data: bytes([Int64(-5), 7, 1 << 40]), expected: [-5, 7, Float(1 << 40)]),
            Case(dtype: "I32", data: bytes([Int32(-5), 7, .max]), expected: [-5, 7, Float(Int32.max)]),
            Case(dtype: "I16", data: bytes([Int16(-300), 7, .min]), expected: [-300, 7, -32768]),
            Case(dtype: "U16", data: bytes([UInt16(65535), 7, 0]), expected: [65535, 7, 0]),
            Case(dtype: "U32", data: bytes([UInt32.max, 7, 0]), expected: [Float(UInt32.max), 7, 0]),
            Case(dtype: "U64", data: bytes([UInt64(3), 7, 0]), expected: [3, 7, 0]),
            Case(dtype: "I8", data: [0xFF, 0x80, 0x05], expected: [-1, -128, 5]),
            Case(dtype: "U8", data: [0xFF, 0x80, 0x05], expected: [255, 128, 5]),
            Case(dtype: "BOOL", data: [0x01, 0x00, 0x01], expected: [1, 0, 1]),
        ]
        for c in cases {
            let header = #"{"t":{"dtype":"\#(c.dtype)","shape":[3],"data_offsets":[0,\#(c.data.count)]}}"#
            let u = try save(fileBytes(header: header, data: c.data), as: "\(c.dtype).safetensors")
            let file = try SafetensorsFile(url: u)
            XCTAssertEqual(try file.info("t").dtype.rawValue, c.dtype)
            let t = try file.tensor("t")
            XCTAssertEqual(t.shape, [3])
            XCTAssertEqual(t.scalars, c.expected, c.dtype)
            XCTAssertEqual(try file.rawData("t"), Data(c.data))
        }
    }

    func testInt64ValuesForTokenIds() throws {
        let header = #"{"ids":{"dtype":"I64","shape":[2,2],"data_offsets":[0,32]},"small":{"dtype":"I32","shape":[2],"data_offsets":[32,40]},"u":{"dtype":"U64","shape":[1],"data_offsets":[40,48]},"f":{"dtype":"F32","shape":[],"data_offsets":[48,52]}}"#
        let data = bytes([Int64(49406), -1, Int64.max, 0]) + bytes([Int32(-7), 9]) + bytes([UInt64.max])
            + floatBytes([1])
        let u = try save(fileBytes(header: header, data: data), as: "ids.safetensors")
        let file = try SafetensorsFile(url: u)
        XCTAssertEqual(try file.int64Values("ids"), [49406, -1, .max, 0])
        XCTAssertEqual(try file.int64Values("small"), [-7, 9])
        XCTAssertThrowsError(try file.int64Values("u")) { error in
            guard case .valueOutOfRange(_, "u", 0)? = error as? SafetensorsError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try file.int64Values("f")) { error in
            guard case .unsupportedDType(_, "f", .f32, _)? = error as? SafetensorsError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try file.tensor("nope")) { error in
            guard case .tensorNotFound(_, "nope")? = error as? SafetensorsError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("ids.safetensors"))
        }
    }

    func testUnalignedDataAndWhitespaceInHeader() throws {
        // A 1-byte U8 tensor puts the F32 tensor at an odd offset; header has no padding but
        // newlines and tabs, and an odd length.
        let header = "\n{ \"a\" : {\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\t\"b\":{\"shape\":[2],\"data_offsets\":[1,9],\"dtype\":\"F32\"} }\r\n "
        let u = try save(fileBytes(header: header, data: [42] + floatBytes([0.25, -8])), as: "unaligned.safetensors")
        let file = try SafetensorsFile(url: u)
        XCTAssertEqual(try file.tensor("a").scalars, [42])
        XCTAssertEqual(try file.tensor("b").scalars, [0.25, -8])
    }

    func testValidButUnconvertibleDTypes() throws {
        let header = #"{"f8":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]},"f4":{"dtype":"F4","shape":[4],"data_offsets":[2,4]},"__metadata__":null}"#
        let u = try save(fileBytes(header: header, data: [1, 2, 3, 4]), as: "f8.safetensors")
        let file = try SafetensorsFile(url: u)
        XCTAssertEqual(file.metadata, [:])
        XCTAssertEqual(try file.info("f4").byteCount, 2)
        XCTAssertThrowsError(try file.tensor("f8")) { error in
            guard case .unsupportedDType(_, "f8", .f8e4m3, _)? = error as? SafetensorsError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("f8.safetensors"))
        }
    }

    func testJSONEscapesInNames() throws {
        let header = #"{"a\u00e9\"\\\/\ud83c\udf89":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}"#
        let u = try save(fileBytes(header: header, data: floatBytes([2])), as: "escapes.safetensors")
        XCTAssertEqual(try SafetensorsFile(url: u).names, ["aé\"\\/🎉"])
    }

    // MARK: malformed files

    func testRejectsTruncatedFile() throws {
        try assertRejects([], name: "empty.safetensors") { if case .fileTooSmall(_, 0) = $0 { return true }; return false }
        try assertRejects([1, 0, 0], name: "short.safetensors") { if case .fileTooSmall(_, 3) = $0 { return true }; return false }
    }

    func testRejectsTruncatedHeader() throws {
        let whole = try Safetensors.encode(["x": Tensor(shape: [2], [1, 2])])
        try assertRejects(Array(whole.prefix(20)), name: "cut-header.safetensors") {
            if case .headerBeyondFile(_, let n, 20) = $0 { return n == whole.count - 16 }
            return false
        }
    }

    func testRejectsTruncatedData() throws {
        let whole = try Safetensors.encode(["x": Tensor(shape: [2], [1, 2])])
        try assertRejects(Array(whole.dropLast(3)), name: "cut-data.safetensors") {
            if case .fileSizeMismatch(_, whole.count - 3, whole.count) = $0 { return true }
            return false
        }
    }

    func testRejectsHugeHeaderLength() throws {
        try assertRejects(fileBytes(header: "{}", headerLength: 100_000_001), name: "huge.safetensors") {
            if case .headerTooLarge(_, 100_000_001) = $0 { return true }; return false
        }
        try assertRejects(fileBytes(header: "{}", headerLength: .max), name: "max.safetensors") {
            if case .headerTooLarge(_, .max) = $0 { return true }; return false
        }
        // Exactly at the limit is not "too large", only beyond this small file.
        try assertRejects(fileBytes(header: "{}", headerLength: 100_000_000), name: "limit.safetensors") {
            if case .headerBeyondFile(_, 100_000_000, 10) = $0 { return true }; return false
        }
    }

    func testRejectsHeaderLengthBeyondFile() throws {
        try assertRejects(fileBytes(header: "{}", headerLength: 3), name: "beyond.safetensors") {
            if case .headerBeyondFile(_, 3, 10) = $0 { return true }; return false
        }
    }

    func testRejectsOverlappingOffsets() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        try assertRejects(fileBytes(header: header, data: Array(repeating: 0, count: 12)), name: "overlap.safetensors") {
            if case .invalidOffsets(_, "b", 4, 12, 8, .overlap) = $0 { return true }; return false
        }
        // Two entries sharing one range (the memory-exhaustion attack shape).
        let same = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        try assertRejects(fileBytes(header: same, data: [0, 0, 0, 0]), name: "alias.safetensors") {
            if case .invalidOffsets(_, _, 0, 4, 4, .overlap) = $0 { return true }; return false
        }
    }

    func testRejectsGapInOffsets() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        try assertRejects(fileBytes(header: header, data: Array(repeating: 0, count: 12)), name: "gap.safetensors") {
            if case .invalidOffsets(_, "b", 8, 12, 4, .gap) = $0 { return true }; return false
        }
        let afterEmpty = #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        try assertRejects(fileBytes(header: afterEmpty, data: Array(repeating: 0, count: 8)), name: "gap-empty.safetensors") {
            if case .invalidOffsets(_, "b", 4, 8, 0, .gap) = $0 { return true }; return false
        }
    }

    func testRejectsOffsetsNotStartingAtZero() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        try assertRejects(fileBytes(header: header, data: Array(repeating: 0, count: 8)), name: "notzero.safetensors") {
            if case .invalidOffsets(_, "a", 4, 8, 0, .doesNotStartAtZero) = $0 { return true }; return false
        }
    }

    func testRejectsBeginAfterEnd() throws {
        let header = #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#
        try assertRejects(fileBytes(header: header, data: Array(repeating: 0, count: 4)), name: "reversed.safetensors") {
            if case .invalidOffsets(_, "b", 4, 0, 0, .beginAfterEnd) = $0 { return true }; return false
        }
    }

    func testRejectsUnknownDType() throws {
        let header = #"{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#
        try assertRejects(fileBytes(header: header, data: [0, 0, 0, 0]), name: "dtype.safetensors") {
            if case .unknownDType(_, "a", "F33") = $0 { return true }; return false
        }
        let lower = #"{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}"#
        try assertRejects(fileBytes(header: lower, data: [0, 0, 0, 0]), name: "dtype-case.safetensors") {
            if case .unknownDType(_, "a", "f32") = $0 { return true }; return false
        }
    }

    func testRejectsShapeSizeMismatch() throws {
        let header = #"{"conv.weight":{"dtype":"F32","shape":[3,3],"data_offsets":[0,32]}}"#
        let name = "mismatch.safetensors"
        try assertRejects(fileBytes(header: header, data: Array(repeating: 0, count: 32)), name: name) {
            if case .sizeMismatch(_, "conv.weight", .f32, [3, 3], 32, 36) = $0 { return true }; return false
        }
        do {
            _ = try SafetensorsFile(url: url(name))
        } catch {
            XCTAssertTrue("\(error)".hasSuffix("\(name): tensor 'conv.weight' has 32 bytes but shape [3,3] of F32 needs 36"),
                          "\(error)")
        }
    }

    func testRejectsSizeOverflowAndMisalignedSubByte() throws {
        let header = #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#
        try assertRejects(fileBytes(header: header, data: [0, 0, 0, 0]), name: "overflow.safetensors") {
            if case .sizeOverflow(_, "a", .f32, _) = $0 { return true }; return false
        }
        let bits = #"{"a":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,4]}}"#
        try assertRejects(fileBytes(header: bits, data: [0, 0, 0, 0]), name: "overflow-bits.safetensors") {
            if case .sizeOverflow(_, "a", .f32, _) = $0 { return true }; return false
        }
        let f4 = #"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#
        try assertRejects(fileBytes(header: f4, data: [0, 0]), name: "f4.safetensors") {
            if case .misalignedSize(_, "a", .f4, [3]) = $0 { return true }; return false
        }
    }

    func testRejectsInvalidUTF8() throws {
        let cases: [(String, [UInt8])] = [
            ("bad-byte", [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]),
            ("overlong", [0x7B, 0x22, 0xC0, 0xAF, 0x22, 0x3A, 0x31, 0x7D]),
            ("surrogate", [0x7B, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x3A, 0x31, 0x7D]),
            ("cut", [0x7B, 0x22, 0xE6, 0x97]),
        ]
        for (label, header) in cases {
            try assertRejects(fileBytes(headerBytes: header), name: "utf8-\(label).safetensors") {
                if case .invalidUTF8(_, 2) = $0 { return true }; return false
            }
        }
    }

    func testRejectsInvalidJSON() throws {
        let cases = [
            ("empty", ""), ("open", "{"), ("trailing-comma", #"{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},}"#),
            ("single-quotes", "{'a':1}"), ("garbage", "{} x"), ("two-values", "{}{}"), ("bare", "abc"),
            ("leading-zero", #"{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}"#),
            ("lone-surrogate", #"{"\ud800":1}"#), ("bad-escape", #"{"\q":1}"#),
            ("control", "{\"a\u{1}\":1}"), ("nul-padding", "{}\0\0"),
            ("deep", String(repeating: "[", count: 100_000)),
        ]
        for (label, header) in cases {
            try assertRejects(fileBytes(header: header), name: "json-\(label).safetensors") {
                if case .invalidJSON = $0 { return true }; return false
            }
        }
    }

    func testRejectsHeaderThatIsNotAnObject() throws {
        for (label, header) in [("array", "[]"), ("string", "\"x\""), ("number", "1  ")] {
            try assertRejects(fileBytes(header: header), name: "root-\(label).safetensors") {
                if case .headerNotObject = $0 { return true }; return false
            }
        }
    }

    func testRejectsDuplicateNames() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        try assertRejects(fileBytes(header: header, data: Array(repeating: 0, count: 8)), name: "dup.safetensors") {
            if case .duplicateKey(_, "a") = $0 { return true }; return false
        }
        let escaped = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\u0061":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        try assertRejects(fileBytes(header: escaped, data: Array(repeating: 0, count: 8)), name: "dup-escaped.safetensors") {
            if case .duplicateKey(_, "a") = $0 { return true }; return false
        }
        let inner = #"{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        try assertRejects(fileBytes(header: inner, data: [0, 0, 0, 0]), name: "dup-field.safetensors") {
            if case .duplicateKey(_, "dtype") = $0 { return true }; return false
        }
        // Large objects (checked with a set rather than a scan), duplicates on both sides of the switch.
        for count in [14, 15, 16, 17, 40] {
            let keys = (0..<count).map { "\"k\($0)\":\"v\"" } + ["\"k0\":\"again\""]
            let header = "{\"__metadata__\":{" + keys.joined(separator: ",") + "}}"
            try assertRejects(fileBytes(header: header), name: "dup-\(count).safetensors") {
                if case .duplicateKey(_, "k0") = $0 { return true }; return false
            }
            let unique = "{\"__metadata__\":{" + keys.dropLast().joined(separator: ",") + "}}"
            XCTAssertEqual(try SafetensorsFile(url: save(fileBytes(header: unique), as: "unique-\(count).safetensors"))
                .metadata.count, count)
        }
        let meta = #"{"__metadata__":{},"__metadata__":{}}"#
        try assertRejects(fileBytes(header: meta), name: "dup-meta.safetensors") {
            if case .duplicateKey(_, "__metadata__") = $0 { return true }; return false
        }
    }

    func testRejectsTrailingBytes() throws {
        let whole = try Safetensors.encode(["x": Tensor(shape: [2], [1, 2])])
        try assertRejects(Array(whole) + [0], name: "trailing.safetensors") {
            if case .fileSizeMismatch(_, whole.count + 1, whole.count) = $0 { return true }; return false
        }
        try assertRejects(fileBytes(header: "{}", data: [0]), name: "trailing-empty.safetensors") {
            if case .fileSizeMismatch(_, 11, 10) = $0 { return true }; return false
        }
    }

    func testRejectsBadNumbers() throws {
        let cases = [
            ("negative-shape", #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, "shape", "-1"),
            ("float-shape", #"{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#, "shape", "1.0"),
            ("exponent-shape", #"{"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}"#, "shape", "1e0"),
            ("float-offset", #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}"#, "data_offsets", "4.5"),
            ("negative-offset", #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, "data_offsets", "-4"),
            ("huge-offset", #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}}"#,
             "data_offsets", "18446744073709551616"),
        ]
        for (label, header, field, text) in cases {
            try assertRejects(fileBytes(header: header, data: [0, 0, 0, 0]), name: "\(label).safetensors") {
                if case .invalidInteger(_, "a", field, text) = $0 { return true }; return false
            }
        }
    }

    func testRejectsMalformedEntries() throws {
        let cases = [
            ("extra-key", #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}"#),
            ("missing-key", #"{"a":{"dtype":"F32","shape":[1]}}"#),
            ("not-object", #"{"a":[1,2]}"#),
            ("dtype-number", #"{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}"#),
            ("shape-string", #"{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#),
            ("shape-nested", #"{"a":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}}"#),
            ("three-offsets", #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}"#),
            ("offsets-strings", #"{"a":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}}"#),
        ]
        for (label, header) in cases {
            try assertRejects(fileBytes(header: header, data: [0, 0, 0, 0]), name: "entry-\(label).safetensors") {
                if case .invalidEntry(_, "a", _) = $0 { return true }; return false
            }
        }
    }

    func testRejectsBadMetadata() throws {
        for (label, header) in [("number-value", #"{"__metadata__":{"a":1}}"#),
                                ("array", #"{"__metadata__":["a"]}"#),
                                ("string", #"{"__metadata__":"pt"}"#)] {
            try assertRejects(fileBytes(header: header), name: "meta-\(label).safetensors") {
                if case .invalidMetadata = $0 { return true }; return false
            }
        }
    }

    /// Random byte flips, insertions and truncations of valid files must give errors, never traps;
    /// whatever is accepted must read back without trapping.
    func testRandomCorruptionNeverCrashes() throws {
        let seeds = [
            try Safetensors.encode(["a.weight": Tensor(shape: [2, 3], [1, 2, 3, 4, 5, 6]), "b": Tensor(2)],
                                   metadata: ["format": "pt"], dtype: .f16),
            Data(fileBytes(header: #"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"m":{"dtype":"U8","shape":[1],"data_offsets":[16,17]}}"#,
                           data: bytes([Int64(1), 2]) + [7])),
        ]
        var rng = SplitMix(11)
        // SAFETENSORS_FUZZ=N runs N mutations per seed (100,000 passed when this was written).
        let mutationsPerSeed = Int(ProcessInfo.processInfo.environment["SAFETENSORS_FUZZ"] ?? "") ?? 1500
        var accepted = 0
        for seed in seeds {
            for _ in 0..<mutationsPerSeed {
                var b = [UInt8](seed)
                for _ in 0...rng.int(3) {
                    switch rng.int(4) {
                    case 0: b[rng.int(b.count)] = UInt8(truncatingIfNeeded: rng.next())
                    case 1: b[rng.int(b.count)] = Array("{}[]\",:0123456789-.e ".utf8)[rng.int(21)]
                    case 2: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: rng.int(b.count))
                    default: b.removeLast(rng.int(min(b.count, 12)))
                    }
                    if b.isEmpty { break }
                }
                do {
                    let file = try SafetensorsFile(data: Data(b), url: URL(fileURLWithPath: "fuzz.safetensors"))
                    accepted += 1
                    for name in file.names {
                        let info = try file.info(name)
                        if info.dtype.convertsToFloat { XCTAssertEqual(try file.tensor(name).count, info.elementCount) }
                        if info.dtype.isInteger { _ = try? file.int64Values(name) }
                    }
                } catch let error as SafetensorsError {
                    XCTAssertTrue(error.description.hasPrefix("fuzz.safetensors") || error.description.contains("/fuzz.safetensors"))
                }
            }
        }
        XCTAssertGreaterThan(accepted, 0)  // some flips land in tensor data and stay valid
    }

    func testUnreadableFile() throws {
        let missing = url("missing.safetensors")
        XCTAssertThrowsError(try SafetensorsFile(url: missing)) { error in
            guard case .unreadable? = error as? SafetensorsError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("missing.safetensors"))
        }
    }
}

/// SplitMix64, for deterministic test values.
private struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// `checkFinite`: weights and noise with a NaN or infinity are refused naming the tensor and the
/// first bad element, for every float dtype; an F64 beyond Float32's range counts; integers pass.
final class SafetensorsFiniteTests: XCTestCase {
    func file(_ entries: [(name: String, dtype: String, bytes: [UInt8], count: Int)]) throws -> SafetensorsFile {
        var offset = 0
        var fields: [String] = []
        for e in entries {
            fields.append("\"\(e.name)\":{\"dtype\":\"\(e.dtype)\",\"shape\":[\(e.count)],\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}")
            offset += e.bytes.count
        }
        var header = "{" + fields.joined(separator: ",") + "}"
        while header.utf8.count % 8 != 0 { header += " " }
        var d = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(header.utf8))
        for e in entries { d.append(contentsOf: e.bytes) }
        return try SafetensorsFile(data: d, url: URL(fileURLWithPath: "/weights.safetensors"))
    }

    func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    func testNonFiniteValuesAreNamedForEveryFloatDType() throws {
        let f = try file([
            ("ok32", "F32", bytes([Float(1), -2, 3e38]), 3),
            ("nan32", "F32", bytes([Float(1), .nan]), 2),
            ("inf16", "F16", bytes([UInt16(0x3C00), 0x3C00, 0xFC00]), 3),        // 1, 1, -inf
            ("ok16", "F16", bytes([UInt16(0x7BFF)]), 1),                         // 65504, the largest finite
            ("nanbf16", "BF16", bytes([UInt16(0x7FC0)]), 1),
            ("big64", "F64", bytes([0.5, 1e300]), 2),                              // finite, but not as Float32
            ("ok64", "F64", bytes([0.5, -1e30]), 2),
            ("ints", "I32", bytes([Int32(-1), 0x7F80_0000]), 2),                   // an infinity's bits, as an integer
        ])
        for ok in ["ok32", "ok16", "ok64", "ints"] { XCTAssertNoThrow(try f.checkFinite(ok), ok) }
        for (name, index) in [("nan32", 1), ("inf16", 2), ("nanbf16", 0), ("big64", 1)] {
            XCTAssertThrowsError(try f.checkFinite(name)) { error in
                XCTAssertEqual(error as? SafetensorsError, .nonFinite(path: "/weights.safetensors", tensor: name, index: index))
                XCTAssertTrue("\(error)".contains("'\(name)': element \(index) is NaN or infinite"), "\(error)")
            }
        }
    }
}

// A safetensors file: header validation, then every tensor read the ways the loaders read them
// (Float32 conversion, integer values, raw bytes, 16-bit copies).
import Foundation
import FuzzSupport
import NeuralNetworks
import TensorEngine

private let name = "fuzz.safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    let file: SafetensorsFile
    do { file = try SafetensorsFile(data: data, url: URL(fileURLWithPath: name)) } catch {
        FuzzCheck.errorNames(error, name)
        return 0
    }
    for tensorName in file.names {
        guard let info = try? file.info(tensorName) else {
            FuzzCheck.require(false, "listed tensor '\(tensorName)' has no info")
            return 0
        }
        // A validated entry's bytes lie inside the file.
        FuzzCheck.require(info.dataOffsets.upperBound + 8 + file.headerLength <= data.count, "'\(tensorName)' ends beyond the file")
        do {
            let t = try file.tensor(tensorName)
            FuzzCheck.require(t.count == info.elementCount, "'\(tensorName)': \(t.count) values for shape \(info.shape)")
        } catch { FuzzCheck.errorNames(error, name) }
        do {
            let values = try file.int64Values(tensorName)
            FuzzCheck.require(values.count == info.elementCount, "'\(tensorName)': \(values.count) integers for shape \(info.shape)")
        } catch { FuzzCheck.errorNames(error, name) }
        if let raw = try? file.rawData(tensorName) {
            FuzzCheck.require(raw.count == info.byteCount, "'\(tensorName)': \(raw.count) raw bytes, entry says \(info.byteCount)")
        }
        if info.dtype == .f16 || info.dtype == .bf16 {
            let half = HalfTensor(shape: info.shape, format: info.dtype == .f16 ? .float16 : .bfloat16)
            do { try file.copyHalfBits(tensorName, into: half) } catch { FuzzCheck.errorNames(error, name) }
        }
    }
    return 0
}

// An IDX file (MNIST-style), raw or gzipped.
import Datasets
import Foundation
import FuzzSupport

private let name = "fuzz-images-idx3-ubyte.gz"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    do {
        let (dims, values) = try IDX.decode(data, name: name)
        FuzzCheck.require(dims.reduce(1, *) == values.count, "IDX: dimensions \(dims) but \(values.count) values")
    } catch { FuzzCheck.errorNames(error, name) }
    return 0
}

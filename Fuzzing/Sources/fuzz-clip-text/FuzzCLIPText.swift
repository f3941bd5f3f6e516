// The CLIP tokenizer (SD 1's and SD 2's, from the test fixtures) on arbitrary text: the first byte
// picks the tokenizer, the rest is the prompt (UTF-8, invalid sequences replaced).
import Foundation
import FuzzSupport
import StableDiffusion

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../../Tests/StableDiffusionTests/Fixtures").standardizedFileURL
private let tokenizers: [CLIPTokenizer] = ["sd1", "sd2"].map { folder in
    do { return try CLIPTokenizer.load(from: fixtures.appendingPathComponent(folder).appendingPathComponent("tokenizer")) } catch {
        fatalError("fuzz-clip-text: cannot load the fixture tokenizer: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCLIPText(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = FuzzInput.data(bytes, count)
    let tokenizer = tokenizers[Int(data.first ?? 0) & 1]
    let text = String(decoding: data.dropFirst(), as: UTF8.self)
    let tokens = tokenizer.tokenize(text)
    let ids = tokenizer.encode(text)
    FuzzCheck.require(ids.count == tokens.count + 2, "encode gave \(ids.count) ids for \(tokens.count) tokens")
    FuzzCheck.require(ids.allSatisfy { $0 >= 0 }, "negative token id")
    let padded = tokenizer.encodePadded(text)
    FuzzCheck.require(padded.count == tokenizer.modelMaxLength, "encodePadded gave \(padded.count) ids")
    FuzzCheck.require(padded.first == tokenizer.bosTokenId, "padded ids do not start with the start token")
    return 0
}

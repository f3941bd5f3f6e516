// A CLIP tokenizer folder: vocab.json, merges.txt, special_tokens_map.json and
// tokenizer_config.json (the input's pieces, split at 0x00 bytes), the tokenizer built from them
// and used on a fixed prompt.
import Foundation
import FuzzSupport
import StableDiffusion

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCLIPVocab(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let parts = FuzzInput.split(FuzzInput.data(bytes, count), parts: 4)
    do {
        let vocabulary = try CLIPTokenizer.parseVocabulary(parts[0], file: "fuzz/vocab.json")
        let merges = try CLIPTokenizer.parseMerges(parts[1], file: "fuzz/merges.txt")
        var tokens = ["bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"]
        var maxLength = 77
        if !parts[2].isEmpty {
            try CLIPTokenizer.applySpecialTokens(parts[2], file: "fuzz/special_tokens_map.json", readsMaxLength: false,
                                                 tokens: &tokens, maxLength: &maxLength)
        }
        if !parts[3].isEmpty {
            try CLIPTokenizer.applySpecialTokens(parts[3], file: "fuzz/tokenizer_config.json", readsMaxLength: true,
                                                 tokens: &tokens, maxLength: &maxLength)
        }
        // `load(from:)` names vocab.json's path in these errors; built directly they say "vocab.json".
        let tokenizer: CLIPTokenizer
        do {
            tokenizer = try CLIPTokenizer(vocabulary: vocabulary, merges: merges, padToken: tokens["pad_token"]!,
                                          bosToken: tokens["bos_token"]!, eosToken: tokens["eos_token"]!,
                                          unknownToken: tokens["unk_token"]!, modelMaxLength: maxLength)
        } catch {
            FuzzCheck.errorNames(error, "vocab.json")
            return 0
        }
        let ids = tokenizer.encodePadded("a photo of a t-shirt/top, <|endoftext|> with ünïcødé!! 123")
        FuzzCheck.require(ids.count == tokenizer.modelMaxLength, "encodePadded gave \(ids.count) ids, not \(tokenizer.modelMaxLength)")
    } catch {
        FuzzCheck.errorNames(error, "fuzz/")
    }
    return 0
}

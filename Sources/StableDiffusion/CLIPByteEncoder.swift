/// GPT-2 / CLIP byte-level encoding: each UTF-8 byte becomes one printable Unicode scalar, so BPE
/// never sees spaces or control bytes. Matches `bytes_to_unicode()` in transformers' and OpenAI's
/// CLIP tokenizers: printable Latin-1 bytes map to themselves, the other 68 to U+0100 onwards.
enum CLIPByteEncoder {
    /// The scalar of each byte value 0...255.
    static let table: [Unicode.Scalar] = {
        var printable: [Int] = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var scalars = printable
        var next = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            scalars.append(256 + next)
            next += 1
        }
        var out = [Unicode.Scalar](repeating: " ", count: 256)
        for (b, c) in zip(printable, scalars) { out[b] = Unicode.Scalar(UInt32(c))! }
        return out
    }()

    /// The byte-level symbols of `text`'s UTF-8 bytes, one string per byte.
    static func symbols(_ text: String) -> [String] {
        text.utf8.map { String(Character(table[Int($0)])) }
    }
}

import Foundation

/// The text clean-up and word splitting of transformers' slow `CLIPTokenizer` when ftfy is not
/// installed (its `BasicTokenizer(strip_accents=False, do_split_on_punc=False)` path, then the
/// pattern `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`).
///
/// Steps: drop NUL, U+FFFD and control/format characters (category C*, except tab, CR, LF); turn
/// whitespace into spaces; put spaces around CJK ideographs; NFC; split on whitespace; lower-case
/// each piece as Python's `str.lower` does (full mappings, final sigma); join with single spaces; then find the pattern's matches left to right. The pattern is
/// matched by hand over Unicode scalars (first alternative that matches at a position wins, as in
/// the `regex` module), with letters = categories L*, numbers = N*, whitespace = White_Space.
/// Not done: ftfy's mojibake repair (transformers uses it when ftfy is installed).
enum CLIPPreTokenizer {
    static let specialTokens: [[Unicode.Scalar]] = ["<|startoftext|>", "<|endoftext|>"].map { Array($0.unicodeScalars) }
    static let contractions: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map { Array($0.unicodeScalars) }

    /// The words (pattern matches) of `text`, before byte encoding and BPE.
    static func words(_ text: String) -> [String] {
        split(Array(normalize(text).unicodeScalars))
    }

    /// BasicTokenizer's clean-up, CJK spacing, NFC, whitespace split and lower-casing, joined by spaces.
    static func normalize(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.value == 0 || s.value == 0xFFFD || isControl(s) { continue }
            if isBasicWhitespace(s) {
                cleaned.append(" ")
            } else if isCJK(s.value) {
                cleaned.append(" "); cleaned.append(s); cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        let nfc = String(cleaned).precomposedStringWithCanonicalMapping
        var pieces: [String] = []
        var current = String.UnicodeScalarView()
        for s in nfc.unicodeScalars {
            if isPythonSpace(s) {
                if !current.isEmpty { pieces.append(lowercased(Array(current))); current = String.UnicodeScalarView() }
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { pieces.append(lowercased(Array(current))) }
        return pieces.joined(separator: " ")
    }

    /// Python's `str.lower()`: each scalar's full lower-case mapping, and capital sigma to final
    /// sigma when a cased letter precedes it and none follows (case-ignorable scalars skipped).
    static func lowercased(_ s: [Unicode.Scalar]) -> String {
        var out = ""
        for (i, c) in s.enumerated() {
            if c.value == 0x3A3 {
                var j = i - 1
                while j >= 0, s[j].properties.isCaseIgnorable { j -= 1 }
                var k = i + 1
                while k < s.count, s[k].properties.isCaseIgnorable { k += 1 }
                let final = j >= 0 && s[j].properties.isCased && !(k < s.count && s[k].properties.isCased)
                out += final ? "\u{3C2}" : "\u{3C3}"
            } else {
                out += c.properties.lowercaseMapping
            }
        }
        return out
    }

    /// `regex.findall(pattern, text)` over scalars.
    static func split(_ s: [Unicode.Scalar]) -> [String] {
        var out: [String] = []
        var i = 0
        func emit(_ r: Range<Int>) {
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s[r])
            out.append(String(v))
        }
        func hasPrefix(_ p: [Unicode.Scalar], at k: Int) -> Bool {
            k + p.count <= s.count && Array(s[k..<(k + p.count)]) == p
        }
        outer: while i < s.count {
            for p in specialTokens where hasPrefix(p, at: i) {
                emit(i..<(i + p.count)); i += p.count; continue outer
            }
            if s[i] == "'" {
                for p in contractions where hasPrefix(p, at: i + 1) {
                    emit(i..<(i + 1 + p.count)); i += 1 + p.count; continue outer
                }
            }
            let c = s[i]
            if isLetter(c) {
                var j = i + 1
                while j < s.count, isLetter(s[j]) { j += 1 }
                emit(i..<j); i = j
            } else if isNumber(c) {
                emit(i..<(i + 1)); i += 1
            } else if !c.properties.isWhitespace {
                var j = i + 1
                while j < s.count, !s[j].properties.isWhitespace, !isLetter(s[j]), !isNumber(s[j]) { j += 1 }
                emit(i..<j); i = j
            } else {
                i += 1
            }
        }
        return out
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// BasicTokenizer's `_is_control`: category C* other than tab, LF, CR.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// BasicTokenizer's `_is_whitespace`: space, tab, LF, CR or category Zs.
    static func isBasicWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.generalCategory == .spaceSeparator
    }

    /// Python's `str.split()` separators (White_Space plus U+001C...U+001F).
    static func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
        s.properties.isWhitespace || (0x1C...0x1F).contains(s.value)
    }

    /// BasicTokenizer's `_is_chinese_char` (CJK Unified Ideographs blocks).
    static func isCJK(_ cp: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(cp) || (0x3400...0x4DBF).contains(cp) || (0x20000...0x2A6DF).contains(cp)
            || (0x2A700...0x2B73F).contains(cp) || (0x2B740...0x2B81F).contains(cp) || (0x2B820...0x2CEAF).contains(cp)
            || (0xF900...0xFAFF).contains(cp) || (0x2F800...0x2FA1F).contains(cp)
    }
}

/// A setting or input of the library that an error message can be about, by the library's own
/// name for it (for settings, the `settings.json` key: `eps`, `n_timesteps`, `noise_by`, ...).
/// A front end maps each setting to its own vocabulary: the `diffclass` CLI to its flags
/// (`--eps`, `--n-timesteps`, ...), so library messages read naturally in both.
///
/// Each library layer declares the settings it names as static members (`Setting.seed`,
/// `Setting.epsilon`, ...); a name is declared once, in the lowest layer that needs it.
public struct Setting: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public var description: String { name }
}

extension Setting {
    /// The model folder or file a run uses.
    public static let model = Setting("model")
    /// A named dataset (`fashion-mnist`).
    public static let dataset = Setting("dataset")
    /// A dataset folder (MNIST-format files, or one subfolder of images per class).
    public static let data = Setting("data")
    public static let split = Setting("split")
    public static let seed = Setting("seed")
    public static let batchSize = Setting("batch_size")
    /// The folder a run writes (an evaluation, robustness or training run folder).
    public static let runFolder = Setting("run_folder")
    /// How large weights are stored (`WeightStorage`).
    public static let weightsDtype = Setting("weights_dtype")
    /// The dtype matrix products compute in (`Engine.computeDType`: fp32, or bf16 by opt-in).
    public static let computeDType = Setting("compute_dtype")
}

/// Error text that may name settings, written as an interpolated string:
/// `"\(Setting.epsilon): '\(text)' is not a number"`. The library renders settings by their
/// names (`description`); a front end renders them its own way (`rendered(naming:)`).
public struct ErrorText: Equatable, Sendable, CustomStringConvertible, ExpressibleByStringInterpolation {
    public enum Piece: Equatable, Sendable {
        case text(String)
        case setting(Setting)
    }

    public private(set) var pieces: [Piece]

    public init(_ text: String) { pieces = text.isEmpty ? [] : [.text(text)] }
    public init(stringLiteral value: String) { self.init(value) }
    public init(stringInterpolation: StringInterpolation) { pieces = stringInterpolation.pieces }

    public struct StringInterpolation: StringInterpolationProtocol {
        var pieces: [Piece] = []
        public init(literalCapacity: Int, interpolationCount: Int) {}
        public mutating func appendLiteral(_ literal: String) { append(literal) }
        public mutating func appendInterpolation(_ setting: Setting) { pieces.append(.setting(setting)) }
        public mutating func appendInterpolation(_ text: ErrorText) { for p in text.pieces { add(p) } }
        /// An error's text, keeping the settings it names.
        public mutating func appendInterpolation(_ error: Error) {
            if let e = error as? SettingNamingError { appendInterpolation(e.text) } else { append(String(describing: error)) }
        }
        public mutating func appendInterpolation<T>(_ value: T) { append(String(describing: value)) }

        mutating func append(_ s: String) { if !s.isEmpty { add(.text(s)) } }
        mutating func add(_ p: Piece) {
            if case .text(let s) = p, case .text(let last)? = pieces.last { pieces[pieces.count - 1] = .text(last + s) } else { pieces.append(p) }
        }
    }

    /// The settings named, in order.
    public var settings: [Setting] {
        pieces.compactMap { if case .setting(let p) = $0 { return p } else { return nil } }
    }

    /// The text with each setting written as `name(setting)`.
    public func rendered(naming name: (Setting) -> String) -> String {
        pieces.map { piece -> String in
            switch piece {
            case .text(let s): return s
            case .setting(let p): return name(p)
            }
        }.joined()
    }

    /// The text with settings by their library names.
    public var description: String { rendered { $0.name } }

    public static func + (a: ErrorText, b: ErrorText) -> ErrorText { "\(a)\(b)" }
}

/// An error whose message may name settings (see `ErrorText`). Front ends render `text` in
/// their vocabulary; `description` uses the library's names.
public protocol SettingNamingError: Error, CustomStringConvertible {
    var text: ErrorText { get }
}

extension SettingNamingError {
    public var description: String { text.description }
    /// The setting the message is first about, if any.
    public var setting: Setting? { text.settings.first }
}

/// A bad setting or an unusable input, for layers that have no error type of their own.
public struct SettingError: SettingNamingError, Equatable {
    public let text: ErrorText
    public init(_ text: ErrorText) { self.text = text }
    /// "`setting`: message".
    public init(_ setting: Setting, _ message: ErrorText) { text = "\(setting): \(message)" }
}

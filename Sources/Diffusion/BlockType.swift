/// The block types of diffusers' U-Net and VAE configs (`down_block_types`, `up_block_types`,
/// `mid_block_type`), by diffusers' class names, which are what the JSON holds. Configs parse the
/// names into this type when they are read, so an unknown or unsupported name is refused there,
/// named, and models compare cases instead of strings.
public enum BlockType: String, Codable, CaseIterable, Sendable {
    case downBlock2D = "DownBlock2D"
    case attnDownBlock2D = "AttnDownBlock2D"
    case crossAttnDownBlock2D = "CrossAttnDownBlock2D"
    case downEncoderBlock2D = "DownEncoderBlock2D"
    case upBlock2D = "UpBlock2D"
    case attnUpBlock2D = "AttnUpBlock2D"
    case crossAttnUpBlock2D = "CrossAttnUpBlock2D"
    case upDecoderBlock2D = "UpDecoderBlock2D"
    case midBlock2D = "UNetMidBlock2D"
    case midBlock2DCrossAttn = "UNetMidBlock2DCrossAttn"

    /// Whether the block has self-attention layers (`AttnDownBlock2D`, `AttnUpBlock2D`).
    public var hasSelfAttention: Bool { self == .attnDownBlock2D || self == .attnUpBlock2D }
    /// Whether the block has cross-attention transformers (`CrossAttn...`).
    public var hasCrossAttention: Bool { self == .crossAttnDownBlock2D || self == .crossAttnUpBlock2D || self == .midBlock2DCrossAttn }

    /// The block type called `name`, when it is one of `supported`; otherwise the message to
    /// give: "`what` 'X' is not supported (A, B)".
    public static func parse(_ name: String, what: String, supported: [BlockType]) -> Result<BlockType, BlockTypeError> {
        guard let t = BlockType(rawValue: name), supported.contains(t) else {
            return .failure(BlockTypeError(description: "\(what) '\(name)' is not supported (\(supported.map(\.rawValue).joined(separator: ", ")))"))
        }
        return .success(t)
    }
}

/// A block type a config does not support (the message names it and the supported ones).
public struct BlockTypeError: Error, CustomStringConvertible {
    public let description: String
}

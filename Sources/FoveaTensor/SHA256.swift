import CFoveaKernels

/// SHA-256 (FIPS 180-4) of bytes fed in pieces; Fovea keeps one in each file it writes to detect damaged bytes.
public struct SHA256 {
    private var context = fovea_sha256_context()

    /// A digest of nothing yet; blocks go through the CPU's SHA extensions where it has them.
    public init() { fovea_sha256_init(&context) }

    /// A digest of nothing yet; with `portable`, blocks always go through the portable C rounds (for comparisons).
    public init(portable: Bool) {
        if portable { fovea_sha256_init_portable(&context) } else { fovea_sha256_init(&context) }
    }

    /// Whether this CPU has the SHA extensions the default digest uses.
    public static var usesExtensions: Bool { fovea_sha256_has_extensions() != 0 }

    /// Feeds the next piece of the message.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        fovea_sha256_update(&context, base, bytes.count)
    }

    /// Feeds the next piece of the message.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) { return done }
        let copy = Array(bytes)
        copy.withUnsafeBytes { update($0) }
    }

    /// The 32-byte digest of everything fed, as 64 lowercase hexadecimal digits (as `sha256sum` prints it).
    public func hexDigest() -> String {
        var finished = context
        var digest = [UInt8](repeating: 0, count: 32)
        fovea_sha256_final(&finished, &digest)
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: digest.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }

    /// The digest of `bytes` in hexadecimal.
    public static func hexDigest(of bytes: some Sequence<UInt8>) -> String {
        var hash = SHA256()
        hash.update(bytes)
        return hash.hexDigest()
    }
}

import CFoveaKernels

/// SHA-256 (FIPS 180-4) of bytes fed in pieces; Fovea keeps one in each file it writes to detect damaged bytes.
public struct SHA256 {
    private var context = fovea_sha256_context()

    /// A digest of nothing yet. Blocks go through the CPU's SHA extensions where it has them; with `portable`, always
    /// through the portable C rounds (for comparing the two).
    public init(portable: Bool = false) {
        if portable { fovea_sha256_init_portable(&context) } else { fovea_sha256_init(&context) }
    }

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

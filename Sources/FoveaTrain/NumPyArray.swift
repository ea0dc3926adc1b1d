/// The NumPy `.npy` format (version 1.0) for float32 arrays: what `fovea predict --npy` writes, `numpy.load` reads.
public enum NumPyArray {
    /// The bytes of a little-endian float32 array of `shape` holding `values` in row-major order.
    public static func encode(_ values: [Float], shape: [Int]) -> [UInt8] {
        let dimensions = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dimensions)), }"
        // Magic (6) + version (2) + length (2) + header, padded with spaces and ended by a newline to a multiple of 64.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let length = UInt16(header.utf8.count)
        bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
        bytes += Array(header.utf8)
        bytes.reserveCapacity(bytes.count + values.count * 4)
        for value in values {
            let bits = value.bitPattern.littleEndian
            bytes += [UInt8(bits & 0xFF), UInt8((bits >> 8) & 0xFF), UInt8((bits >> 16) & 0xFF), UInt8(bits >> 24)]
        }
        return bytes
    }
}

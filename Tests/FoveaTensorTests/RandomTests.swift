import Foundation
import FoveaTensor
import Testing

@Suite("Seeded generator")
struct RandomTests {
    /// xoshiro256** written out from its definition (Blackman & Vigna), on an array of four words.
    static func referenceSequence(from state: [UInt64], count: Int) -> [UInt64] {
        var s = state
        func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
        return (0..<count).map { _ in
            let result = rotl(s[1] &* 5, 7) &* 9
            let t = s[1] << 17
            s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45)
            return result
        }
    }

    @Test("draws follow xoshiro256** from the SplitMix64-seeded state, and the state advances with them")
    func sequence() {
        for seed: UInt64 in [0, 1, 0xDEAD_BEEF] {
            var generator = SeededGenerator(seed: seed)
            let start = generator.state
            #expect(start.count == 4)
            let expected = Self.referenceSequence(from: start, count: 1000)
            #expect((0..<1000).map { _ in generator.next() } == expected)
            #expect(generator.state != start)
        }
    }

    @Test("the state round-trips through JSON; a state of the wrong length or all zeros is a decoding error")
    func coding() throws {
        var generator = SeededGenerator(seed: 7)
        _ = generator.next()
        let data = try JSONEncoder().encode(generator)
        #expect(String(decoding: data, as: UTF8.self).hasPrefix("{\"state\":["))
        var decoded = try JSONDecoder().decode(SeededGenerator.self, from: data)
        #expect(decoded == generator)
        #expect(decoded.next() == generator.next())
        for bad in ["{\"state\":[1,2,3]}", "{\"state\":[1,2,3,4,5]}", "{\"state\":[0,0,0,0]}", "{\"state\":[]}", "{}",
                    "{\"state\":[-1,2,3,4]}"] {
            #expect(throws: DecodingError.self, "\(bad)") { try JSONDecoder().decode(SeededGenerator.self, from: Data(bad.utf8)) }
        }
    }
}

// CIFARResNet: registered by the family's builders (to be written).
extension ModelZoo {
    static let cifarResNetEntries: [Entry] = []
}

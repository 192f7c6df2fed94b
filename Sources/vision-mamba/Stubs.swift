import ArgumentParser
struct Forward: ParsableCommand {}
struct Predict: ParsableCommand {}
struct Convert: ParsableCommand {}

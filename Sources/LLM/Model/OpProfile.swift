// Where a training step's time goes: wall time per kind of operation, for `llm bench train --profile`.
import Dispatch

public final class OpProfile: @unchecked Sendable {  // used from the thread that runs the model
    public enum Op: Int, CaseIterable, Sendable {
        case encoder, norm, matmul, attention, activation, residual, softmaxLoss
        case encoderBack, normBack, matmulBack, attentionBack, activationBack, residualBack, softmaxLossBack
        case zeroGrad, gradNorm, adamW, rope, ropeBack, lora, loraBack, communication

        public var name: String {
            ["encoder", "norm", "matmul", "attention", "activation", "residual", "softmax+loss",
             "encoder bwd", "norm bwd", "matmul bwd", "attention bwd", "activation bwd", "residual bwd",
             "softmax+loss bwd", "zero grads", "grad norm", "adamw", "rope", "rope bwd", "lora", "lora bwd",
             "communication"][rawValue]
        }
    }

    private var nanoseconds = [UInt64](repeating: 0, count: Op.allCases.count)
    private var calls = [Int](repeating: 0, count: Op.allCases.count)

    public init() {}

    @inline(__always)
    func measure(_ op: Op, _ body: () -> Void) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        nanoseconds[op.rawValue] += DispatchTime.now().uptimeNanoseconds - t0
        calls[op.rawValue] += 1
    }

    public func reset() {
        for i in nanoseconds.indices { nanoseconds[i] = 0; calls[i] = 0 }
    }

    /// (operation, milliseconds, calls), largest first, for operations that ran.
    public var entries: [(op: Op, milliseconds: Double, calls: Int)] {
        Op.allCases.filter { calls[$0.rawValue] > 0 }
            .map { ($0, Double(nanoseconds[$0.rawValue]) / 1e6, calls[$0.rawValue]) }
            .sorted { $0.1 > $1.1 }
    }
}

package io.intentflow.flink;

import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Splits the Python operator's one output per micro-batch into records: a {@code String[]} whose
 * entries start with {@code 'A'} (an action, to the main output) or {@code 'D'} (a DLQ record, to
 * {@link #DLQ}). One Python-to-Java crossing per batch instead of one per action.
 *
 * <p>An entry with any other mark is a bug of ours; it goes to the DLQ whole, never dropped.
 */
public class MarkedOutputSplitter extends ProcessFunction<String[], String> {

    private static final long serialVersionUID = 1L;

    /** Side output of DLQ records (JSON text, docs/contracts.md §1). */
    public static final OutputTag<String> DLQ = new OutputTag<>("dlq", Types.STRING);

    @Override
    public void processElement(String[] batch, Context ctx, Collector<String> out) {
        for (String entry : batch) {
            if (entry == null || entry.isEmpty()) {
                continue;
            }
            char mark = entry.charAt(0);
            if (mark == 'A') {
                out.collect(entry.substring(1));
            } else if (mark == 'D') {
                ctx.output(DLQ, entry.substring(1));
            } else {
                ctx.output(DLQ, entry);
            }
        }
    }
}

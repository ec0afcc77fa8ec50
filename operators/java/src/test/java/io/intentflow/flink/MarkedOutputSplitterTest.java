package io.intentflow.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.apache.flink.streaming.api.operators.ProcessOperator;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.stream.Collectors;

class MarkedOutputSplitterTest {

    @Test
    void actionsToMainOutputDlqToSideOutput() throws Exception {
        OneInputStreamOperatorTestHarness<String[], String> h =
                new OneInputStreamOperatorTestHarness<>(new ProcessOperator<>(new MarkedOutputSplitter()));
        h.open();
        h.processElement(new String[] {"A{\"a\":1}", "D{\"reason\":\"late_event\"}", "A{\"a\":2}", "?odd"}, 1L);
        assertEquals(List.of("{\"a\":1}", "{\"a\":2}"), h.extractOutputValues());
        List<String> dlq = h.getSideOutput(MarkedOutputSplitter.DLQ).stream()
                .map(r -> r.getValue()).collect(Collectors.toList());
        assertEquals(List.of("{\"reason\":\"late_event\"}", "?odd"), dlq);
        h.close();
    }
}

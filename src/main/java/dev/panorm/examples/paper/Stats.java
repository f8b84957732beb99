package dev.panorm.examples.paper;

/** Mean, spread and range over seeds. */
record Stats(double mean, double sd, double min, double max, int n) {
    static Stats of(double[] values) {
        double sum = 0;
        double min = Double.POSITIVE_INFINITY;
        double max = Double.NEGATIVE_INFINITY;
        for (double v : values) {
            sum += v;
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        double mean = sum / values.length;
        double squares = 0;
        for (double v : values) {
            squares += (v - mean) * (v - mean);
        }
        // The sample standard deviation (n - 1): a handful of seeds estimates the spread of all of them.
        double sd = values.length > 1 ? Math.sqrt(squares / (values.length - 1)) : 0;
        return new Stats(mean, sd, min, max, values.length);
    }
}

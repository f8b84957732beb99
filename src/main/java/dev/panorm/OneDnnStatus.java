package dev.panorm;

import dev.panorm.internal.dnnl.Dnnl;

/**
 * oneDNN's {@code dnnl_status_t}, with {@link #UNKNOWN} for codes this version does not know.
 *
 * <p>Guide: {@code docs/api.md} (errors).
 */
public enum OneDnnStatus {
    /** {@code dnnl_success}. */
    SUCCESS(Dnnl.dnnl_success(), "dnnl_success"),
    /** {@code dnnl_out_of_memory}. */
    OUT_OF_MEMORY(Dnnl.dnnl_out_of_memory(), "dnnl_out_of_memory"),
    /** {@code dnnl_invalid_arguments}: the arguments or the combination of them is not valid. */
    INVALID_ARGUMENTS(Dnnl.dnnl_invalid_arguments(), "dnnl_invalid_arguments"),
    /** {@code dnnl_unimplemented}: no implementation for this configuration on this CPU. */
    UNIMPLEMENTED(Dnnl.dnnl_unimplemented(), "dnnl_unimplemented"),
    /** {@code dnnl_last_impl_reached}. */
    LAST_IMPL_REACHED(Dnnl.dnnl_last_impl_reached(), "dnnl_last_impl_reached"),
    /** {@code dnnl_runtime_error}. */
    RUNTIME_ERROR(Dnnl.dnnl_runtime_error(), "dnnl_runtime_error"),
    /** {@code dnnl_not_required}. */
    NOT_REQUIRED(Dnnl.dnnl_not_required(), "dnnl_not_required"),
    /** {@code dnnl_invalid_graph}. */
    INVALID_GRAPH(Dnnl.dnnl_invalid_graph(), "dnnl_invalid_graph"),
    /** {@code dnnl_invalid_graph_op}. */
    INVALID_GRAPH_OP(Dnnl.dnnl_invalid_graph_op(), "dnnl_invalid_graph_op"),
    /** {@code dnnl_invalid_shape}. */
    INVALID_SHAPE(Dnnl.dnnl_invalid_shape(), "dnnl_invalid_shape"),
    /** {@code dnnl_invalid_data_type}. */
    INVALID_DATA_TYPE(Dnnl.dnnl_invalid_data_type(), "dnnl_invalid_data_type"),
    /** A code that none of the above names. */
    UNKNOWN(Integer.MIN_VALUE, "unknown status");

    private final int code;
    private final String nativeName;

    OneDnnStatus(int code, String nativeName) {
        this.code = code;
        this.nativeName = nativeName;
    }

    /** {@return the numeric {@code dnnl_status_t} value ({@code Integer.MIN_VALUE} for {@link #UNKNOWN})} */
    public int code() {
        return code;
    }

    /** {@return the C name, e.g. {@code dnnl_unimplemented}} */
    public String nativeName() {
        return nativeName;
    }

    /**
     * The status with this code.
     *
     * @param code a {@code dnnl_status_t} value, as oneDNN's C functions return it
     * @return the status, or {@link #UNKNOWN} for a code this panorm does not name
     */
    public static OneDnnStatus of(int code) {
        for (OneDnnStatus status : values()) {
            if (status.code == code && status != UNKNOWN) {
                return status;
            }
        }
        return UNKNOWN;
    }
}

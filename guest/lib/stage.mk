# The rules of a stage built from one folder's sources plus the SDK library's (firmware/Makefile
# and the `minivisor new-stub` template): every object in $(BUILD), named after its source file
# (vpath finds the source in the folder or in the SDK's lib/). Include it after setting BUILD and OBJS.
$(BUILD)/%.c.o: %.c | $(BUILD)
	$(CC) $(CFLAGS) -MMD -MP -MF $(BUILD)/$*.c.d -c $< -o $@

$(BUILD)/%.S.o: %.S | $(BUILD)
	$(CC) $(CFLAGS) $(ASFLAGS) -MMD -MP -MF $(BUILD)/$*.S.d -c $< -o $@

$(BUILD):
	mkdir -p $@

clean:
	rm -rf $(BUILD)

.PHONY: all clean
-include $(OBJS:.o=.d)

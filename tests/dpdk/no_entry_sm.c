/* A shared object that is not a state machine (no bpx_sm_entry). */
__attribute__((visibility("default"))) int not_a_state_machine(void)
{
	return 42;
}

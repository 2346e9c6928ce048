void dummy_out(){}

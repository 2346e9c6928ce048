void dummy_robust(){}

package storagetest

var (
	txTests      []test
	revokerTests []test
	domainTests  []test
	opsTests     []test
)
